"""An operator's repairs from the admin: re-send one report or an account's failed, stale and
rejected reports, and confirm a suspect report found in Stripe; each in the audit log."""

import logging

from django.contrib.auth.models import User

from billing.models import MeterReport
from billing.services.reports.errors import MeterReportAlreadySent, MeterReportRefused
from billing.services.reports.sending import usage_report_send
from portal.audit import audit_record
from portal.models import Account, AuditEntry

logger = logging.getLogger(__name__)


def usage_report_resend(*, report_id: int, actor: User | None) -> MeterReport:
    """An operator's re-send from the admin (see ``usage_report_send``), in the audit log."""
    before = MeterReport.objects.get(pk=report_id)
    report = usage_report_send(report_id=report_id, operator=True)
    audit_record(
        actor=actor,
        action="meter_report.resend",
        account=report.account,
        target=before.identifier,
        before=_audited(before),
        after=_audited(report),
    )
    return report


def _audited(report: MeterReport) -> dict:
    return {
        "status": report.status,
        "attempts": report.attempts,
        "identifier": report.identifier,
        "customer": report.stripe_customer_id,
        # The event's timestamp: a re-send to a new customer may date it later (_billed_from).
        "dated": report.event_time.isoformat(),
    }


def meter_report_confirm(*, report_id: int, actor: User | None) -> MeterReport:
    """An operator found a suspect report's units in the customer's meter event summary: it is
    sent (billed), and stays out of every re-send."""
    before = MeterReport.objects.get(pk=report_id)
    updated = MeterReport.objects.filter(pk=report_id, status=MeterReport.Status.SUSPECT).update(
        status=MeterReport.Status.SENT,
        last_error="Confirmed in Stripe's meter event summary by an operator.",
    )
    report = MeterReport.objects.get(pk=report_id)
    if updated:
        audit_record(
            actor=actor,
            action="meter_report.confirm",
            account=report.account,
            target=report.identifier,
            before={"status": before.status},
            after={"status": report.status},
        )
    return report


def account_meter_reports_resend(*, account: Account, actor: User | None) -> AuditEntry | None:
    """Send the account's failed, stale and rejected usage reports to Stripe again, oldest
    first: failed and stale ones with their own identifiers (Stripe counts a report it already
    has once), rejected ones under a new identifier to the account's current customer. None:
    there were none. Suspect reports are left to the per-report admin, after a look at Stripe.

    The entry's ``after`` holds each report's status once the re-send returned (keyed by the
    identifier it had): ``sent``, or still ``failed``/``stale``/``rejected`` with the reason on
    the report (see the usage reports list).
    """
    reports = list(
        MeterReport.objects.filter(
            account=account,
            status__in=[
                MeterReport.Status.FAILED,
                MeterReport.Status.STALE,
                MeterReport.Status.REJECTED,
            ],
        ).order_by("window_start")
    )
    if not reports:
        return None
    after = {}
    for report in reports:
        try:
            after[report.identifier] = usage_report_send(report_id=report.pk, operator=True).status
        except MeterReportAlreadySent:
            # Another run sent it between the listing and this call.
            after[report.identifier] = MeterReport.Status.SENT
        except MeterReportRefused as refused:
            logger.warning("Usage report not re-sent: %s", refused)
            after[report.identifier] = report.status
    return audit_record(
        actor=actor,
        action="account.reports_resend",
        account=account,
        before={"reports": {report.identifier: report.status for report in reports}},
        after={"reports": after},
    )
