"""Which hours of an account's usage are reported, and which accounts have a window due.

Windows follow the clock's hours, cut at the billing period's boundaries so that every unit is
billed in the period it was used in.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Exists, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from djstripe.models import Subscription

from billing.models import MeterReport
from metering.models import UsageRollup
from portal.models import Account

# Stripe refuses meter events older than 35 days.
STRIPE_ACCEPTS_PAST = timedelta(days=35)
# Accounts whose subscription is running: their usage is reported up to the last closed hour.
SUBSCRIBED = (
    Account.PaymentStatus.ACTIVE,
    Account.PaymentStatus.TRIALING,
    Account.PaymentStatus.PAST_DUE,
    Account.PaymentStatus.UNPAID,
)


@dataclass(frozen=True)
class ReportWindow:
    start: datetime
    end: datetime
    # Unreported rows from here on are claimed too: rollups that came in after their own
    # window was reported (the rollup job was behind) still reach the same period's invoice.
    sweep_from: datetime
    # True for a period's final window, reported minutes after the period ends.
    closes_period: bool = False


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
