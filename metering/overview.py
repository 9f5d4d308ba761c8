"""Usage across all accounts for the operators' overview (the admin's index): units per day
over the last weeks, drawn as a small server-side SVG, and the accounts near their quota.

Figures are read from the rollups (``UsageRollup``), like the admin's account list: they lag the
live counters by the rollup interval, and cost no limiter call. Each read is a fixed number of
queries whatever the number of accounts.
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import (
    Case,
    DateTimeField,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from metering.models import QuotaCredit, UsageRollup
from metering.selectors import PeriodUsage
from portal.models import Account

# The longest a quota period lasts: a calendar month (free accounts' periods and Stripe's
# monthly subscriptions alike), so every current period starts inside this many days.
LONGEST_PERIOD = timedelta(days=31)

# The trend chart's frame, in SVG user units (it scales to its container).
WIDTH = 640
HEIGHT = 180
LEFT = 48
RIGHT = 8
TOP = 12
BOTTOM = 26


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    units: int


def axis_top(highest: float) -> tuple[int, int]:
    """The axis's top value and its tick step: about four steps of 1, 2 or 5 times a power of
    ten, with 10 % headroom over the highest bar."""
    wanted = max(1.0, highest * 1.1)
    rough = wanted / 4
    power = 10 ** math.floor(math.log10(rough)) if rough >= 1 else 1
    step = next((s * power for s in (1, 2, 5, 10) if s * power >= rough), 10 * power)
    return step * math.ceil(wanted / step), step


@dataclass(frozen=True, slots=True)
class DayUnits:
    day: date
    units: int
    requests: int


@dataclass(slots=True)
class UsageTrend:
    """Units per day, every day of the span (days without calls at 0), with a bar chart's
    geometry: the template only draws it."""

    days: list[DayUnits]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)

    @property
    def total_units(self) -> int:
        return sum(day.units for day in self.days)

    @property
    def busiest(self) -> DayUnits | None:
        return max(self.days, key=lambda day: day.units, default=None)


def usage_per_day(*, days: int = 30, now: datetime | None = None) -> UsageTrend:
    """All accounts' rolled-up units per UTC day over the last ``days`` days, today included;
    one query (a scan of the span's rollups: the trend is as cheap as the rollups are few)."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    rows = (
        UsageRollup.objects.filter(minute__gte=datetime.combine(first, time(), tzinfo=UTC))
        .annotate(day=TruncDate("minute", tzinfo=UTC))
        .values("day")
        .annotate(units=Sum("units"), requests=Sum("requests"))
        .order_by()
    )
    totals = {row["day"]: (row["units"], row["requests"]) for row in rows}
    trend = UsageTrend(
        days=[
            DayUnits(day, *totals.get(day, (0, 0)))
            for day in (first + timedelta(days=offset) for offset in range(days))
        ]
    )
    _lay_out(trend)
    return trend


def _lay_out(trend: UsageTrend) -> None:
    plot_width = trend.right - trend.left
    plot_height = trend.bottom - trend.top
    top_value, step = axis_top(max((day.units for day in trend.days), default=0))

    def y(value: float) -> float:
        return round(trend.top + plot_height * (1 - value / top_value), 1)

    slot = plot_width / max(1, len(trend.days))
    width = round(max(1.0, slot * 0.7), 1)
    trend.bars = [
        Bar(
            x=round(trend.left + index * slot + (slot - width) / 2, 1),
            y=y(day.units),
            width=width,
            height=round(trend.bottom - y(day.units), 1),
            day=day.day,
            units=day.units,
        )
        for index, day in enumerate(trend.days)
    ]
    trend.y_ticks = [
        Tick(position=y(value), label=_short(value)) for value in range(0, top_value + 1, step)
    ]
    # A dated tick a week (every day for a span of two weeks or less).
    every = 7 if len(trend.days) > 14 else 1
    trend.x_ticks = [
        Tick(
            position=round(trend.left + index * slot + slot / 2, 1),
            label=f"{day.day:%b} {day.day.day}",
        )
        for index, day in enumerate(trend.days)
        if index % every == 0
    ]


def _short(value: int) -> str:
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return str(value)


@dataclass(frozen=True, slots=True)
class NearQuota:
    account: Account
    usage: PeriodUsage


def _near_quota_candidates(*, percent: int, now: datetime) -> QuerySet[Account]:
    """Accounts that may be at ``percent`` % of their quota or more, their rolled-up units
    summed from ``since``: the current billing period's start for an account inside a paid
    period (exact), else the longest period's span back from now (a free account's monthly
    period starts inside it). A superset, as credits only raise the quota; it is checked
    exactly by ``accounts_near_quota``."""
    since = Case(
        When(period_end__gt=now, period_start__lte=now, then=F("period_start")),
        default=Value(now - LONGEST_PERIOD),
        output_field=DateTimeField(),
    )
    units = Subquery(
        UsageRollup.objects.filter(account=OuterRef("pk"), minute__gte=OuterRef("since"))
        .values("account")
        .annotate(total=Sum("units"))
        .values("total"),
        output_field=IntegerField(),
    )
    return (
        Account.objects.alias(since=since)
        .alias(units=Coalesce(units, Value(0)))
        .alias(scaled=F("units") * 100, threshold=F("tier__included_units") * percent)
        .filter(units__gt=0, scaled__gte=F("threshold"))
    )


def _period_usage(accounts: list[Account], now: datetime) -> dict[int, PeriodUsage]:
    """Rolled-up usage vs quota in each account's current period, like
    ``metering.selectors.accounts_period_usage``, in two queries built flat: one ``OR`` of
    every account's own period (a balanced tree of Q objects would be copied at each join,
    quadratic in the number of accounts), and the credits of the span, matched to each
    account's period here."""
    if not accounts:
        return {}
    periods = {account.pk: account.current_period(now) for account in accounts}
    in_period = Q(
        *(
            Q(account_id=pk, minute__gte=start, minute__lt=end)
            for pk, (start, end) in periods.items()
        ),
        _connector=Q.OR,
    )
    units = dict(
        UsageRollup.objects.filter(in_period)
        .values("account_id")
        .annotate(total=Sum("units"))
        .values_list("account_id", "total")
        .order_by()
    )
    credits: dict[int, int] = {}
    for account_id, start, credited in (
        QuotaCredit.objects.filter(account_id__in=periods, period_start__gte=now - LONGEST_PERIOD)
        .values("account_id", "period_start")
        .annotate(total=Sum("units"))
        .values_list("account_id", "period_start", "total")
        .order_by()
    ):
        if periods[account_id][0] == start:
            credits[account_id] = credits.get(account_id, 0) + credited
    return {
        account.pk: PeriodUsage(
            units=units.get(account.pk) or 0,
            included_units=account.tier.included_units,
            credited_units=credits.get(account.pk, 0),
        )
        for account in accounts
    }


def accounts_near_quota(*, percent: int = 80, now: datetime | None = None) -> list[NearQuota]:
    """Accounts that have used ``percent`` % or more of this period's quota (credits
    included), most used first; three queries whatever the number of accounts (the candidates
    with their owner and tier, their period's units, their credits)."""
    now = now or timezone.now()
    candidates = list(
        _near_quota_candidates(percent=percent, now=now).select_related("owner", "tier")
    )
    usage = _period_usage(candidates, now)
    near = [
        NearQuota(account, usage[account.pk])
        for account in candidates
        if (usage[account.pk].percent or 0) >= percent
    ]
    return sorted(near, key=lambda row: (-(row.usage.percent or 0), row.account.pk))


def accounts_near_quota_filter(
    accounts: QuerySet[Account], *, percent: int = 80, now: datetime | None = None
) -> QuerySet[Account]:
    """``accounts`` narrowed to those ``accounts_near_quota`` lists (the admin's list filter)."""
    ids = [row.account.pk for row in accounts_near_quota(percent=percent, now=now)]
    return accounts.filter(pk__in=ids)
