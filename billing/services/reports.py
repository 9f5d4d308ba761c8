"""Usage reporting: rolled-up usage to Stripe, one meter event per account and window, once.

The ledger comes first. For each closed window one transaction writes the ``MeterReport`` row,
with an identifier derived from (account, window), and claims the ``UsageRollup`` rows it
covers; Stripe is called only after that commit, and the row is marked sent after the call.
Whatever fails in between (a timeout, a 500, a killed worker, a crash before the mark), the
next attempt sends the same identifier, and Stripe, which keeps identifiers for at least 24
hours, records it once: its "duplicate identifier" refusal means the first one landed.

Windows follow the clock's hours, cut at the billing period's boundaries so that every unit is
billed in the period it was used in; the event's timestamp is the window's last second. The
whole design and each failure case are in docs/architecture.md, "Reporting and alerts".
"""

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import stripe
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Exists, F, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from djstripe.models import Customer, Subscription
from stripe.params.billing import MeterEventCreateParams

from billing.models import MeterReport, TierSwitch
from billing.stripe_api import stripe_client
from metering.models import UsageRollup
from portal.audit import audit_record
from portal.models import Account, AuditEntry

logger = logging.getLogger(__name__)

# Stripe refuses meter events older than 35 days. A window is given up an hour before that, so
# a report never expires while it is in flight; an operator settles it by hand (status stale).
STRIPE_ACCEPTS_PAST = timedelta(days=35)
STALE_MARGIN = timedelta(hours=1)
# Stripe remembers an identifier for "at least 24 hours". A report that was tried (so may have
# landed) and is still unconfirmed after this long is not re-sent blindly: past the duplicate
# window a re-send could count twice, so it goes to an operator instead.
IDENTIFIER_MEMORY = timedelta(hours=23)
# HTTP calls per report in one run before it is left failed for the next run.
MAX_TRIES = 5
BACKOFF_CAP_SECONDS = 8.0
# A Retry-After longer than this ends the run's tries; the next run tries again.
RETRY_AFTER_CAP_SECONDS = 30.0
# Accounts whose subscription is running: their usage is reported up to the last closed hour.
SUBSCRIBED = (
    Account.PaymentStatus.ACTIVE,
    Account.PaymentStatus.TRIALING,
    Account.PaymentStatus.PAST_DUE,
    Account.PaymentStatus.UNPAID,
)
# The PostgreSQL advisory lock namespace for "a meter event call in flight for this account".
_LOCK_SPACE = 0x4D44
_UPDATE_BATCH = 5000


class MeterReportRefused(Exception):
    """An operator's re-send that cannot go ahead; the message says why."""


class MeterReportAlreadySent(MeterReportRefused):
    """Stripe has this report; sending it again is refused."""


# Stripe refused these (or may have) after accepting the call: an operator re-sends them under a
# new identifier, never the automatic runs.
NEEDS_NEW_IDENTIFIER = (MeterReport.Status.REJECTED, MeterReport.Status.SUSPECT)
# Stripe's error code for a meter event whose customer it does not know (or was deleted).
CUSTOMER_NOT_FOUND = "meter_event_customer_not_found"


@dataclass(frozen=True)
class ReportWindow:
    start: datetime
    end: datetime
    # Unreported rows from here on are claimed too: rollups that came in after their own
    # window was reported (the rollup job was behind) still reach the same period's invoice.
    sweep_from: datetime
    # True for a period's final window, reported minutes after the period ends.
    closes_period: bool = False


@dataclass
class ReportRunResult:
    accounts: int = 0
    reports: list[MeterReport] = field(default_factory=list)
    # Accounts whose part of the run raised (logged); their reports are retried next run.
    errors: int = 0

    def count(self, status: str) -> int:
        return sum(1 for report in self.reports if report.status == status)


# --- Windows -------------------------------------------------------------------------------------


def report_windows(
    account: Account,
    cursor: datetime | None,
    closed_before: datetime,
    subscribed_since: datetime | None = None,
    until: datetime | None = None,
) -> list[ReportWindow]:
    """The account's windows that are closed and not reported yet, oldest first.

    ``until``: a running subscription's last window ends there rather than at an hour boundary
    (a tier switch reports its old stretch up to the switch minute, ``billing.services.switch``).

    ``cursor``: where the account's last report ended (None: never reported).
    ``subscribed_since``: when its subscription started, from dj-stripe's copy (None: unknown;
    the stored ``period_start`` stands in, which billing.services.subscriptions sets from the
    subscription).

    A running subscription is reported from where reporting stopped up to the last hour
    boundary before ``closed_before``. A period that has ended gets its final window
    [resume, period end) as soon as the end is before ``closed_before``, also when the
    subscription was canceled meanwhile. Nothing before the subscription's start is in a
    window: usage on the free tier is never billed, also not after an upgrade.
    """
    period_start, _ = account.current_period(closed_before)
    previous_start, _ = account.current_period(period_start - timedelta(microseconds=1))
    hour = until or closed_before.replace(minute=0, second=0, microsecond=0)

    if subscribed_since is None and cursor is None and account.payment_status in SUBSCRIBED:
        # Never reported and no dj-stripe copy: the account's own period start, which
        # billing.services.subscriptions sets from the running subscription, is the earliest
        # billable moment.
        subscribed_since = account.period_start

    def not_before_subscription(moment: datetime) -> datetime:
        return max(moment, subscribed_since) if subscribed_since is not None else moment

    if cursor is not None and (subscribed_since is None or cursor >= subscribed_since):
        resume: datetime | None = cursor
        # Older than the previous period with no known start: possibly a stretch without a
        # subscription, which must not be billed; reporting restarts with the current period.
        if subscribed_since is None and cursor < previous_start:
            resume = None
    else:
        # Never reported for this subscription (a cursor before its start is an earlier one's).
        resume = subscribed_since

    windows: list[ReportWindow] = []
    if resume is not None and resume < period_start:
        windows.append(
            ReportWindow(
                max(resume, previous_start),
                period_start,
                not_before_subscription(previous_start),
                closes_period=True,
            )
        )
    if account.payment_status in SUBSCRIBED:
        start = max(resume, period_start) if resume is not None else period_start
        if hour > start:
            windows.append(ReportWindow(start, hour, not_before_subscription(period_start)))
    return windows


def _subscription_starts(subscription_ids: list[str]) -> dict[str, datetime]:
    """When each subscription started, as dj-stripe stored it from Stripe."""
    rows = Subscription.objects.filter(id__in=[sid for sid in subscription_ids if sid])
    return {
        sid: datetime.fromtimestamp(int(start), UTC)
        for sid, start in rows.values_list("id", "stripe_data__start_date")
        if start
    }


def _cursor_subquery() -> Subquery:
    return Subquery(
        MeterReport.objects.filter(account=OuterRef("pk"))
        .order_by("-window_end")
        .values("window_end")[:1]
    )


def usage_report_due_accounts(
    *, now: datetime | None = None, period_close_only: bool = False
) -> list[int]:
    """Ids of the accounts the reporter has work for: a closed window with unreported usage,
    or a report still to send. ``period_close_only``: only windows that close a period (the
    check that runs every few minutes, so a period's last usage reaches its invoice in time)."""
    now = now or timezone.now()
    closed_before = now - timedelta(seconds=settings.USAGE_REPORT_GRACE_SECONDS)
    reportable = Account.objects.filter(stripe_customer__isnull=False).filter(
        Q(payment_status__in=SUBSCRIBED)
        # A subscription that ended (its end is the period_start billing.services.subscriptions
        # leaves) may still have its last period's final window to report.
        | Q(
            payment_status=Account.PaymentStatus.CANCELED,
            period_start__gte=now - STRIPE_ACCEPTS_PAST,
        )
    )
    # The span of unreported usage per account; rows older than Stripe accepts are left to the
    # operator (they surface as stale reports only if a window still reaches them).
    spans = {
        row["account_id"]: (row["first"], row["last"])
        for row in UsageRollup.objects.filter(
            meter_report__isnull=True,
            minute__gte=now - STRIPE_ACCEPTS_PAST,
            minute__lt=closed_before,
            account__in=reportable.values("pk"),
        )
        .values("account_id")
        .annotate(first=Min("minute"), last=Max("minute"))
        .order_by()
    }
    due: set[int] = set()
    accounts = list(Account.objects.filter(pk__in=spans).annotate(cursor=_cursor_subquery()))
    starts = _subscription_starts([account.stripe_subscription_id for account in accounts])
    for account in accounts:
        first, last = spans[account.pk]
        since = starts.get(account.stripe_subscription_id)
        for window in report_windows(account, account.cursor, closed_before, since):
            if period_close_only and not window.closes_period:
                continue
            if first < window.end and last >= window.sweep_from:
                due.add(account.pk)
                break
    due.update(_accounts_with_late_usage(reportable, now, closed_before))
    if not period_close_only:
        due.update(
            MeterReport.objects.filter(
                status__in=[MeterReport.Status.PENDING, MeterReport.Status.FAILED]
            ).values_list("account_id", flat=True)
        )
    return sorted(due)


def _accounts_with_late_usage(
    reportable: QuerySet[Account], now: datetime, closed_before: datetime
) -> set[int]:
    """Accounts with usage inside a window reported for a period that has closed: the rollup
    was late, and ``_late_reports_create`` has a report to write for it."""
    covered = MeterReport.objects.filter(
        account_id=OuterRef("account_id"),
        sequence=0,
        window_start__lte=OuterRef("minute"),
        window_end__gt=OuterRef("minute"),
    )
    earliest = dict(
        UsageRollup.objects.filter(
            meter_report__isnull=True,
            minute__gte=now - STRIPE_ACCEPTS_PAST,
            account__in=reportable.values("pk"),
        )
        .filter(Exists(covered))
        .values("account_id")
        .annotate(first=Min("minute"))
        .values_list("account_id", "first")
        .order_by()
    )
    accounts = Account.objects.filter(pk__in=earliest)
    return {
        account.pk
        for account in accounts
        if earliest[account.pk] < account.current_period(closed_before)[0]
    }


# --- The ledger ------------------------------------------------------------------------------


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


# --- Sending -------------------------------------------------------------------------------------

_local_slots: dict[int, threading.Lock] = {}
_local_slots_guard = threading.Lock()


@contextmanager
def _customer_slot(account_id: int) -> Iterator[bool]:
    """Whether this process may call Stripe for the account now: Stripe allows one meter event
    call in flight per customer, so concurrent runs take turns (the loser leaves the report
    alone; its Celery task tries again a few seconds later). PostgreSQL: a session advisory
    lock, no transaction held across the call, released by the server if the worker dies.
    SQLite (the embedded mode, one process by design): a lock in this process."""
    if connection.vendor == "postgresql":
        key = [_LOCK_SPACE, account_id % 2**31]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
            acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        return
    with _local_slots_guard:
        lock = _local_slots.setdefault(account_id, threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def usage_report_send(
    *,
    report_id: int,
    now: datetime | None = None,
    operator: bool = False,
    client: stripe.StripeClient | None = None,
) -> MeterReport:
    """Send one report to Stripe, retrying transient failures with back-off, and record the
    outcome: sent, failed (the next run, or an operator, tries again) or stale.

    ``operator``: an operator's explicit re-send from the admin. It also re-sends a report that
    was stale because its identifier may have left Stripe's duplicate window (the operator has
    checked Stripe's meter summary), and one Stripe rejected (or may have) after accepting it:
    under a new identifier, to the account's current customer (``_reidentify``). Never one
    Stripe has, nor one too old for Stripe. Raises ``MeterReportAlreadySent`` for a sent
    report and ``MeterReportRefused`` for a rejected one that cannot go when ``operator`` is
    set.
    """
    now = now or timezone.now()
    report = MeterReport.objects.get(pk=report_id)
    with _customer_slot(report.account_id) as acquired:
        report.refresh_from_db()
        if report.status == MeterReport.Status.SENT:
            if operator:
                raise MeterReportAlreadySent(f"{report.identifier} was sent {report.sent_at}")
            return report
        if not acquired:
            logger.info("Usage report %s: another call for this customer is in flight", report)
            return report
        if report.status in NEEDS_NEW_IDENTIFIER:
            if not operator:
                return report
            report = _reidentify(report, now)
            if report.status != MeterReport.Status.PENDING:
                return report  # changed meanwhile: nothing to send
        if _too_old_for_stripe(report, now):
            return _mark(
                report,
                MeterReport.Status.STALE,
                "Window older than Stripe accepts (35 days); settle it by hand.",
            )
        if report.status == MeterReport.Status.STALE and not operator:
            return report
        if not operator and report.attempts and report.identifier_since < now - IDENTIFIER_MEMORY:
            return _mark(
                report,
                MeterReport.Status.STALE,
                "Not confirmed within Stripe's 24-hour duplicate window. Check the customer's "
                "meter event summary for this window; re-send it from the admin only if missing.",
            )
        return _send(report, client or stripe_client())


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


def _reidentify(report: MeterReport, now: datetime) -> MeterReport:
    """Before an operator's re-send of a report Stripe rejected (or may have): a new identifier
    and the account's current Stripe customer, written before the call.

    Stripe keeps an identifier for at least 24 hours ("Create a billing meter event",
    https://docs.stripe.com/api/billing/meter-event/create); its documents do not say whether
    a refused event's identifier counts, and the emulator treats it like any other (a re-send
    would be answered "duplicate", and marked sent while never billed). So the re-send carries
    ``<first identifier>-r<n>``; the rejected ones stay in ``rejections``. The event's timestamp
    is the window's last second, unless it goes to another customer than the one it was first
    sent to (see ``_billed_from``).
    """
    if _too_old_for_stripe(report, now):
        raise MeterReportRefused(
            f"{report.identifier}: window older than Stripe accepts (35 days); settle it by hand."
        )
    customer_id = _stripe_customer_id(report.account)
    if not customer_id:
        raise MeterReportRefused(
            f"{report.identifier}: the account has no Stripe customer to send it to."
        )
    last = report.rejections[-1] if report.rejections else {}
    if last.get("code") == CUSTOMER_NOT_FOUND and last.get("customer") == customer_id:
        raise MeterReportRefused(
            f"{report.identifier}: Stripe did not find customer {customer_id}, which is still "
            "the account's customer; give the account a customer Stripe has first."
        )
    with transaction.atomic():
        locked = MeterReport.objects.select_for_update().get(pk=report.pk)
        if locked.status not in NEEDS_NEW_IDENTIFIER:
            return locked  # another re-send got here first
        rejections = list(locked.rejections)
        if not rejections or rejections[-1]["identifier"] != locked.identifier:
            # Suspect, not named by Stripe: the operator found it missing from the summary.
            rejections.append(
                {
                    "identifier": locked.identifier,
                    "customer": locked.stripe_customer_id,
                    "code": "not_in_meter_summary",
                    "message": "Re-sent by an operator who found it missing in Stripe.",
                    "event": None,
                    "at": now.isoformat(),
                }
            )
        locked.rejections = rejections
        previous = locked.identifier
        locked.identifier = locked.next_identifier()
        locked.stripe_customer_id = customer_id
        locked.status = MeterReport.Status.PENDING
        # Counts the tries of the current identifier (its 23-hour check runs from resent_at).
        locked.attempts = 0
        locked.resent_at = now
        locked.last_error = f"Re-sent as {locked.identifier}; Stripe refused {previous}."
        billed_from = (
            _billed_from(report.account, customer_id, now)
            if customer_id != rejections[0]["customer"]
            else None
        )
        if billed_from is not None and billed_from > locked.event_time:
            locked.not_before = billed_from
        locked.save()
    logger.warning("Usage report %s re-sent as %s to %s", previous, locked.identifier, customer_id)
    return locked


def _billed_from(account: Account, customer_id: str, now: datetime) -> datetime | None:
    """The earliest moment a meter event for ``customer_id`` is billed on an open invoice: the
    start of the current billing period of the account's running subscription, if that
    subscription is the customer's. None: the account has no running subscription (known here)
    for that customer, and the event keeps its timestamp.

    A report rejected because Stripe did not know its customer (deleted in the Dashboard, which
    also cancels the customer's subscriptions) is re-sent to the account's new customer, whose
    subscription started after the report's window. A metered price bills the usage dated from
    when it was put on the subscription; usage recorded before a subscription is billed only if
    the subscription is backdated ("Manage your usage-based billing setup", sections "Update
    prices mid-cycle" and "Create a backdated subscription",
    https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup), so at its
    own timestamp the event would reach the meter and no invoice. Dated at the start of the new
    subscription's current period instead (``MeterReport.not_before``), it is billed on that
    period's invoice. The trade-off: the units are billed in a later period than they were used
    in, at the price and against the included units of the tier subscribed now, rather than
    never.
    """
    if account.payment_status not in SUBSCRIBED or not account.stripe_subscription_id:
        return None
    subscription_id = account.stripe_subscription_id
    # dj-stripe's copy says whose subscription it is; without one, the account's own fields,
    # which billing.services.subscriptions sets from the same subscription, stand in.
    owner = (
        Subscription.objects.filter(id=subscription_id)
        .values_list("customer__id", flat=True)
        .first()
    )
    if owner is not None and owner != customer_id:
        return None
    period_start, _ = account.current_period(now)
    started = _subscription_starts([subscription_id]).get(subscription_id)
    return max(period_start, started) if started is not None else period_start


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


def _send(report: MeterReport, client: stripe.StripeClient) -> MeterReport:
    params: MeterEventCreateParams = {
        "event_name": report.event_name,
        "identifier": report.identifier,
        "payload": {"stripe_customer_id": report.stripe_customer_id, "value": str(report.units)},
        "timestamp": int(report.event_time.timestamp()),
    }
    error = ""
    tried_before = report.attempts
    for attempt in range(1, MAX_TRIES + 1):
        # Counted before the call: from here on the event may have reached Stripe.
        MeterReport.objects.filter(pk=report.pk).update(attempts=F("attempts") + 1)
        try:
            client.v1.billing.meter_events.create(
                params=params,
                options={"idempotency_key": _idempotency_key(report, tried_before + attempt)},
            )
        except stripe.InvalidRequestError as exc:
            if _is_duplicate(exc):
                # Stripe keeps the first event with this identifier: it is billed, once.
                return _mark_sent(report, "Stripe already had this identifier (an earlier try).")
            if exc.code == "timestamp_too_far_in_past":
                return _mark(report, MeterReport.Status.STALE, _describe(exc))
            return _mark(report, MeterReport.Status.FAILED, _describe(exc))
        except (stripe.RateLimitError, stripe.APIConnectionError, stripe.APIError) as exc:
            error = _describe(exc)
            delay = _retry_delay(exc, attempt)
            logger.warning("Usage report %s, try %s: %s", report.identifier, attempt, error)
            if attempt == MAX_TRIES or delay is None:
                break
            time.sleep(delay)
        except stripe.StripeError as exc:
            # Authentication, permission: nothing a retry in this run would change.
            return _mark(report, MeterReport.Status.FAILED, _describe(exc))
        else:
            return _mark_sent(report, "")
    return _mark(report, MeterReport.Status.FAILED, error)


def _idempotency_key(report: MeterReport, try_number: int) -> str:
    """A key of its own for each try. Stripe saves the first answer given to an idempotency key
    once the request began executing, a 500 included, and replays it for 24 hours ("Idempotent
    requests", https://docs.stripe.com/api/idempotent_requests): a retry under the same key
    would get that 500 back forever. What keeps a retry from counting twice is the meter event's
    ``identifier``, which Stripe deduplicates on its own; within one try the SDK's network
    retries reuse this key."""
    return f"{report.identifier}:try-{try_number}"


def _is_duplicate(exc: stripe.InvalidRequestError) -> bool:
    # Stripe answers a reused identifier with a 400 "An event already exists with identifier
    # ..." (code duplicate_meter_event); the message is checked too, the code is not promised.
    message = (exc.user_message or str(exc) or "").lower()
    return exc.code == "duplicate_meter_event" or (
        exc.param == "identifier" and "already exists" in message
    )


def _retry_delay(exc: stripe.StripeError, attempt: int) -> float | None:
    """Seconds to wait before the next try: Stripe's Retry-After (plus jitter) for a 429,
    else exponential back-off with full jitter. None: longer than this run should wait."""
    if isinstance(exc, stripe.RateLimitError):
        retry_after = _header(exc, "Retry-After")
        if retry_after is not None:
            if retry_after > RETRY_AFTER_CAP_SECONDS:
                return None
            return retry_after + random.uniform(0, max(0.05, retry_after * 0.2))
    base = settings.USAGE_REPORT_BACKOFF_MS / 1000
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, base * 2 ** (attempt - 1)))


def _header(exc: stripe.StripeError, name: str) -> float | None:
    headers = exc.headers or {}
    raw = headers.get(name) or headers.get(name.lower())
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _describe(exc: stripe.StripeError) -> str:
    status = f"HTTP {exc.http_status} " if exc.http_status else ""
    code = f"{exc.code}: " if exc.code else ""
    return f"{type(exc).__name__}: {status}{code}{exc.user_message or exc}"[:2000]


def _mark_sent(report: MeterReport, note: str) -> MeterReport:
    # Stripe's asynchronous verdict on this identifier (rejected, from a thin event that came
    # in while this call was out) outranks the call's answer.
    MeterReport.objects.filter(pk=report.pk).exclude(status=MeterReport.Status.REJECTED).update(
        status=MeterReport.Status.SENT, sent_at=timezone.now(), last_error=note
    )
    report.refresh_from_db()
    return report


def _mark(report: MeterReport, status: str, error: str) -> MeterReport:
    # A sent report stays sent: another worker's confirmation is never overwritten; nor is
    # Stripe's rejection (a failed re-send of the same identifier would be "duplicate", then
    # marked sent).
    MeterReport.objects.filter(pk=report.pk).exclude(
        status__in=[MeterReport.Status.SENT, MeterReport.Status.REJECTED]
    ).update(status=status, last_error=error)
    report.refresh_from_db()
    if report.status not in (MeterReport.Status.SENT, MeterReport.Status.REJECTED):
        logger.error("Usage report %s is %s: %s", report.identifier, report.status, error)
    return report


# --- Runs ----------------------------------------------------------------------------------------


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
