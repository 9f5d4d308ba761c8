"""A reporting run: each due account's windows written to the ledger, then its unsent reports
sent, oldest first."""

import logging
from dataclasses import dataclass, field
from datetime import datetime

import stripe
from django.utils import timezone

from billing.models import MeterReport
from billing.services.reports.ledger import usage_report_prepare
from billing.services.reports.sending import usage_report_send
from billing.services.reports.windows import usage_report_due_accounts
from billing.stripe_api import stripe_client

logger = logging.getLogger(__name__)


@dataclass
class ReportRunResult:
    accounts: int = 0
    reports: list[MeterReport] = field(default_factory=list)
    # Accounts whose part of the run raised (logged); their reports are retried next run.
    errors: int = 0

    def count(self, status: str) -> int:
        return sum(1 for report in self.reports if report.status == status)


def usage_report_account(
    *,
    account_id: int,
    now: datetime | None = None,
    until: datetime | None = None,
    client: stripe.StripeClient | None = None,
) -> list[MeterReport]:
    """One account's part of a run: write its closed windows' reports (up to ``until`` when
    given, see ``report_windows``), then send every report of the account not sent yet, oldest
    first, one call at a time."""
    now = now or timezone.now()
    client = client or stripe_client()
    usage_report_prepare(account_id=account_id, now=now, until=until)
    unsent = MeterReport.objects.filter(
        account_id=account_id, status__in=[MeterReport.Status.PENDING, MeterReport.Status.FAILED]
    ).order_by("window_start")
    results = []
    for report_id in list(unsent.values_list("pk", flat=True)):
        report = usage_report_send(report_id=report_id, now=now, client=client)
        results.append(report)
        if report.status != MeterReport.Status.SENT:
            # Stripe is failing for this customer, or another run has the slot: later
            # windows wait for the next run, in order.
            break
    return results


def usage_report_run(
    *, now: datetime | None = None, period_close_only: bool = False
) -> ReportRunResult:
    """A whole run in this process (the management command and the benchmark; the Celery task
    fans the accounts out to one task each instead)."""
    now = now or timezone.now()
    result = ReportRunResult()
    # One client (one kept-alive connection) for the run, not one per call.
    client = stripe_client()
    for account_id in usage_report_due_accounts(now=now, period_close_only=period_close_only):
        result.accounts += 1
        try:
            result.reports.extend(
                usage_report_account(account_id=account_id, now=now, client=client)
            )
        except Exception:
            # One account's failure (its reports stay pending, re-sent by the next run with
            # the same identifiers) must not keep the others from being reported.
            logger.exception("Usage report run: account %s failed", account_id)
            result.errors += 1
    return result
