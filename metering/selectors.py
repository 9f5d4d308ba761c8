"""Reads of usage: what an account spent this period, exactly, rolled up or not.

Usage lives in two places: ``UsageRollup`` rows for minutes the rollup has applied, and the
limiter's counters for the minutes it has not (the last two or three, or more if the job is
behind). Both are read and added up, and a minute is never counted from both places:

1. the limiter's counters are read first, with each minute they hold;
2. one SQL statement then sums the rollups and, in the same snapshot, tells for each of those
   minutes whether it already has rows.

A minute with rows was applied before the statement's snapshot, so its rows count and its
counters (drained, waiting to be discarded) do not. A minute without rows was not applied
before the snapshot; its counters were read before that, so they are still all there.

A period's minutes are those from the minute its start falls in up to (excluding) the minute its
end falls in: usage in the first seconds of an account's very first period (signup) belongs to
that period, and every minute to exactly one period. The quota counter counts by the exact
instant instead; the two differ by at most the part of one minute around a period's boundary.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from metering.limiter import get_limiter
from metering.limiter.base import LimiterUnavailable, UsageCount
from metering.models import QuotaCredit, UsageRollup
from portal.models import Account, ApiKey


def _minute_datetime(minute: int) -> datetime:
    return datetime.fromtimestamp(minute, UTC)


def period_minutes(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The usage minutes [first, last) that belong to the period [start, end).

    Both ends round up: the limiter counts usage of a period from the first whole minute at or
    after its start (``metering.limiter.base.usage_minute``), so the minute in which a period
    starts holds only the previous period's usage.
    """
    return _ceil_minute(start), _ceil_minute(end)


def _ceil_minute(moment: datetime) -> datetime:
    floored = moment.replace(second=0, microsecond=0)
    if floored == moment or moment.year == datetime.max.year:
        return floored
    return floored + timedelta(minutes=1)


def _live_usage(
    account_id: int, start: datetime, end: datetime
) -> tuple[dict[int, list[UsageCount]], bool]:
    """The limiter's counters for minutes in [start, end), and whether the limiter answered."""
    try:
        live = get_limiter().live_usage(account_id)
    except LimiterUnavailable:
        return {}, False
    first, last = start.timestamp(), end.timestamp()
    return {minute: counts for minute, counts in live.items() if first <= minute < last}, True


def _overlap_markers(minutes: list[int]) -> dict[str, Count]:
    """One ``COUNT`` per live minute: rows present means the minute was already applied."""
    return {
        f"applied_{minute}": Count("id", filter=Q(minute=_minute_datetime(minute)))
        for minute in minutes
    }


def period_units(
    account_id: int, period_start: datetime, period_end: datetime | None = None
) -> int:
    """Units counted for the account from ``period_start`` (to ``period_end``, if given).

    Seeds the limiter's quota counter when it is missing, and feeds the alerts.
    """
    start, end = period_minutes(period_start, period_end or datetime.max.replace(tzinfo=UTC))
    live, _ = _live_usage(account_id, start, end)
    totals = UsageRollup.objects.filter(
        account_id=account_id, minute__gte=start, minute__lt=end
    ).aggregate(units=Sum("units"), **_overlap_markers(list(live)))
    units = totals["units"] or 0
    for minute, counts in live.items():
        if not totals[f"applied_{minute}"]:
            units += sum(count.units for count in counts)
    return units


def period_included_units(account: Account, period_start: datetime) -> int:
    """The tier's included units plus the operator's credits for this period."""
    credits = QuotaCredit.objects.filter(account=account, period_start=period_start).aggregate(
        units=Sum("units")
    )["units"]
    return account.tier.included_units + (credits or 0)


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    units: int
    requests: int
    # Units from the period's start up to and including this day.
    cumulative: int


@dataclass(frozen=True, slots=True)
class EndpointUsage:
    endpoint: str
    units: int
    requests: int


@dataclass(frozen=True, slots=True)
class KeyUsage:
    # None: a key deleted since; its usage still counts.
    key_id: int | None
    name: str
    prefix: str
    units: int
    requests: int


@dataclass(frozen=True, slots=True)
class UsageSummary:
    period_start: datetime
    period_end: datetime
    # The slice the filters select (the whole account without filters).
    units: int
    requests: int
    # The whole account, whatever the filters: what the quota is measured against.
    account_units: int
    included_units: int
    overage_units: int
    overage_policy: str
    # Units past the included ones the spend cap allows; None: no cap.
    overage_cap: int | None
    days: list[DayUsage]
    endpoints: list[EndpointUsage]
    keys: list[KeyUsage]
    # False: the limiter did not answer, so the last minutes are missing from the figures.
    live_included: bool = True
    key_id: int | None = None
    endpoint: str | None = None
    endpoint_names: list[str] = field(default_factory=list)

    @property
    def remaining_included_units(self) -> int:
        return max(0, self.included_units - self.account_units)

    @property
    def percent_of_included(self) -> float:
        if self.included_units <= 0:
            return 100.0 if self.account_units else 0.0
        return 100.0 * self.account_units / self.included_units


def _period_days(start: datetime, end: datetime) -> list[date]:
    first = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def usage_summary(
    *,
    account: Account,
    now: datetime | None = None,
    key_id: int | None = None,
    endpoint: str | None = None,
) -> UsageSummary:
    """The current period's usage: totals, every day of the period (zeros included), and the
    split per endpoint and per key. ``key_id`` and ``endpoint`` narrow the figures (not the
    quota, which is the account's)."""
    period_start, period_end = account.current_period(now or timezone.now())
    start, end = period_minutes(period_start, period_end)
    live, live_included = _live_usage(account.pk, start, end)

    # (day, key id, endpoint) -> [units, requests], rollups and live counters merged.
    cells: dict[tuple[date, int | None, str], list[int]] = defaultdict(lambda: [0, 0])
    markers = _overlap_markers(list(live))
    rows = list(
        UsageRollup.objects.filter(account=account, minute__gte=start, minute__lt=end)
        .values("api_key_id", "endpoint", day=TruncDate("minute"))
        .annotate(units=Sum("units"), requests=Sum("requests"), **markers)
        .order_by()
    )
    applied = {minute for minute in live if any(row[f"applied_{minute}"] for row in rows)}
    for row in rows:
        cell = cells[(row["day"], row["api_key_id"], row["endpoint"])]
        cell[0] += row["units"]
        cell[1] += row["requests"]
    for minute, counts in live.items():
        if minute in applied:
            continue
        day = _minute_datetime(minute).date()
        for count in counts:
            cell = cells[(day, count.key_id, count.endpoint)]
            cell[0] += count.units
            cell[1] += count.requests

    account_units = sum(units for units, _ in cells.values())
    endpoint_names = sorted({name for _, _, name in cells})
    selected = {
        (day, cell_key, name): value
        for (day, cell_key, name), value in cells.items()
        if (key_id is None or cell_key == key_id) and (endpoint is None or name == endpoint)
    }

    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    per_endpoint: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_key: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    for (day, cell_key, name), (units, requests) in selected.items():
        for bucket in (per_day[day], per_endpoint[name], per_key[cell_key]):
            bucket[0] += units
            bucket[1] += requests

    days, running = [], 0
    for day in _period_days(period_start, period_end):
        units, requests = per_day.get(day, (0, 0))
        running += units
        days.append(DayUsage(day=day, units=units, requests=requests, cumulative=running))

    known_keys = {
        key.pk: key
        for key in ApiKey.objects.filter(account=account, pk__in=[k for k in per_key if k])
    }
    # Rows of a deleted key say None; its live counters still carry the old id: one line.
    merged_keys: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    for cell_key, (units, requests) in per_key.items():
        slot = merged_keys[cell_key if cell_key in known_keys else None]
        slot[0] += units
        slot[1] += requests
    keys = []
    for cell_key, (units, requests) in merged_keys.items():
        key = known_keys.get(cell_key)
        keys.append(
            KeyUsage(
                key_id=key.pk if key else None,
                name=key.name if key else "Deleted key",
                prefix=key.prefix if key else "",
                units=units,
                requests=requests,
            )
        )
    keys.sort(key=lambda usage: (-usage.units, usage.name))
    endpoints = sorted(
        (
            EndpointUsage(endpoint=name, units=u, requests=r)
            for name, (u, r) in per_endpoint.items()
        ),
        key=lambda usage: (-usage.units, usage.endpoint),
    )
    included = period_included_units(account, period_start)
    tier = account.tier
    return UsageSummary(
        period_start=period_start,
        period_end=period_end,
        units=sum(day.units for day in days),
        requests=sum(day.requests for day in days),
        account_units=account_units,
        included_units=included,
        overage_units=max(0, account_units - included),
        overage_policy=tier.overage_policy,
        overage_cap=tier.overage_cap_units(),
        days=days,
        endpoints=endpoints,
        keys=keys,
        live_included=live_included,
        key_id=key_id,
        endpoint=endpoint,
        endpoint_names=endpoint_names,
    )
