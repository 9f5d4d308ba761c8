"""The ledger: a ``MeterReport`` row per closed window, written with the rollups it claims, in
one transaction before Stripe is called; and late reports for usage rolled up after its
period's final window was reported."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from djstripe.models import Customer

from billing.models import MeterReport, TierSwitch
from billing.services.reports.windows import (
    STRIPE_ACCEPTS_PAST,
    ReportWindow,
    _subscription_starts,
    report_windows,
)
from metering.models import UsageRollup
from portal.models import Account

logger = logging.getLogger(__name__)

# A window is given up an hour before Stripe's 35 days (``STRIPE_ACCEPTS_PAST``), so a report
# never expires while it is in flight; an operator settles it by hand (status stale).
STALE_MARGIN = timedelta(hours=1)
_UPDATE_BATCH = 5000


def usage_report_prepare(
    *, account_id: int, now: datetime | None = None, until: datetime | None = None
) -> list[MeterReport]:
    """Write a ``MeterReport`` for each closed window of the account that has unreported
    units, claiming those rollups in the same transaction. Returns the new reports.
    ``until``: see ``report_windows`` (the caller has rolled up every minute before it).

    Accounts without a Stripe customer (the free tier) are skipped: their rollups stay
    unclaimed and are never billed, also after an upgrade (see ``report_windows``).
    """
    now = now or timezone.now()
    closed_before = now - timedelta(seconds=settings.USAGE_REPORT_GRACE_SECONDS)
    created: list[MeterReport] = []
    with transaction.atomic():
        # The account's row lock makes concurrent runs for one account take turns: the second
        # one waits here, then finds the first one's reports (its cursor) and claimed rows.
        account = Account.objects.select_for_update().filter(pk=account_id).first()
        if account is None:
            return created
        customer_id = _stripe_customer_id(account)
        if not customer_id:
            return created
        cursor = account.meter_reports.aggregate(end=Max("window_end"))["end"]
        since = _subscription_starts([account.stripe_subscription_id]).get(
            account.stripe_subscription_id
        )
        scheduled = (
            TierSwitch.objects.filter(account=account, status=TierSwitch.Status.SCHEDULED)
            .values_list("effective_at", flat=True)
            .first()
        )
        if scheduled is not None:
            # A tier switch on its way: nothing past its minute is reported until Stripe has
            # switched, so no event carries the new tier's usage to the old price.
            natural_end = closed_before.replace(minute=0, second=0, microsecond=0)
            until = min(until or natural_end, scheduled)
        for window in report_windows(account, cursor, closed_before, since, until):
            report = _report_create(account, customer_id, window, now)
            if report is not None:
                created.append(report)
        created.extend(_late_reports_create(account, customer_id, closed_before, now))
    return created


def _stripe_customer_id(account: Account) -> str | None:
    """The account's Stripe customer id now (None: it has none)."""
    if account.stripe_customer_id is None:
        return None
    return (
        Customer.objects.filter(djstripe_id=account.stripe_customer_id)
        .values_list("id", flat=True)
        .first()
    )


def _late_reports_create(
    account: Account, customer_id: str, closed_before: datetime, now: datetime
) -> list[MeterReport]:
    """Reports for usage rolled up after the final window of its period was reported.

    Within a period, the next window sweeps up such rows (``ReportWindow.sweep_from``); once a
    period is closed there is no next window in it, so each reported window that gained rows
    gets one more report of its own (``sequence`` 1, 2…), dated in that window. Stripe puts
    usage dated in a period on that period's invoice while the invoice is still a draft, about
    an hour after the period ends ("How invoices work: finalization", Stripe docs); the
    period-close run rolls the limiter up first, so late rows are the exception. Rows that no
    reported window covers (free usage before a subscription) are never billed.
    """
    period_start, _ = account.current_period(closed_before)
    late_rows = list(
        UsageRollup.objects.select_for_update(skip_locked=True)
        .filter(
            account_id=account.pk,
            meter_report__isnull=True,
            minute__lt=period_start,
            minute__gte=now - STRIPE_ACCEPTS_PAST,
        )
        .values_list("pk", "minute", "units")
    )
    if not late_rows:
        return []
    windows = list(
        account.meter_reports.filter(sequence=0, window_end__gt=min(r[1] for r in late_rows))
        .filter(window_start__lt=period_start)
        .order_by("window_start")
        .values_list("window_start", "window_end")
    )
    created = []
    for start, end in windows:
        rows = [(pk, units) for pk, minute, units in late_rows if start <= minute < end]
        units = sum(row_units for _, row_units in rows)
        if units <= 0:
            continue
        sequence = 1 + (
            account.meter_reports.filter(window_start=start).aggregate(last=Max("sequence"))["last"]
            or 0
        )
        report = _ledger_write(
            MeterReport(
                account=account,
                window_start=start,
                window_end=end,
                sequence=sequence,
                units=units,
                identifier=MeterReport.identifier_for(account.pk, start, sequence),
                event_name=settings.STRIPE_METER_EVENT_NAME,
                stripe_customer_id=customer_id,
            ),
            [pk for pk, _ in rows],
            now,
        )
        logger.warning(
            "Usage report %s: %s units rolled up after their window was reported",
            report.identifier,
            units,
        )
        created.append(report)
    return created


def _report_create(
    account: Account, customer_id: str, window: ReportWindow, now: datetime
) -> MeterReport | None:
    # Locked so no other transaction changes what is being counted; skip_locked, because a row
    # someone else holds (nothing should, under the account lock) is better left unclaimed for
    # the period's next report than waited for while the account row is locked.
    rows = list(
        UsageRollup.objects.select_for_update(skip_locked=True)
        .filter(
            account_id=account.pk,
            meter_report__isnull=True,
            minute__gte=window.sweep_from,
            minute__lt=window.end,
        )
        .values_list("pk", "units")
    )
    units = sum(row_units for _, row_units in rows)
    if units <= 0:
        return None
    report = MeterReport(
        account=account,
        window_start=window.start,
        window_end=window.end,
        units=units,
        identifier=MeterReport.identifier_for(account.pk, window.start),
        event_name=settings.STRIPE_METER_EVENT_NAME,
        stripe_customer_id=customer_id,
        not_before=_after_switch(account, window),
    )
    return _ledger_write(report, [pk for pk, _ in rows], now)


def _after_switch(account: Account, window: ReportWindow) -> datetime | None:
    """A moment just after the tier switch that began this window, when Stripe applied it
    after the window's last second; None otherwise. Stripe bills the new price only for usage
    dated after the update (see ``billing.services.switch``)."""
    applied_at = (
        TierSwitch.objects.filter(
            account=account,
            status=TierSwitch.Status.APPLIED,
            effective_at__lte=window.start,
            applied_at__gte=window.end - timedelta(seconds=1),
        )
        .order_by("-applied_at")
        .values_list("applied_at", flat=True)
        .first()
    )
    return applied_at + timedelta(seconds=1) if applied_at is not None else None


def _ledger_write(report: MeterReport, rollup_ids: list[int], now: datetime) -> MeterReport:
    """Save the report and claim its rollups, in the caller's transaction."""
    if _too_old_for_stripe(report, now):
        report.status = MeterReport.Status.STALE
        report.last_error = "Window older than Stripe accepts (35 days); settle it by hand."
        logger.error(
            "Usage report %s is stale: %s units never sent", report.identifier, report.units
        )
    report.save()
    for offset in range(0, len(rollup_ids), _UPDATE_BATCH):
        chunk = rollup_ids[offset : offset + _UPDATE_BATCH]
        UsageRollup.objects.filter(pk__in=chunk).update(meter_report=report)
    return report


def _too_old_for_stripe(report: MeterReport, now: datetime) -> bool:
    return report.event_time < now - STRIPE_ACCEPTS_PAST + STALE_MARGIN
