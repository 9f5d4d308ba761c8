"""Reads of usage: what an account spent this period, exactly, rolled up or not, and its quota
(the tier's included units plus the operator's credits).

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

The same rule seeds a quota counter Redis lost (``quota_seed_units``), and one read here is
about the limiter's Redis itself: whether its configuration keeps that usage
(``metering_redis_safety``).
"""

import operator
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from typing import Any, NamedTuple, TypeVar

from django.db.models import BooleanField, Count, ExpressionWrapper, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from redis.exceptions import RedisClusterException, RedisError

from metering.limiter import get_limiter
from metering.limiter.base import LimiterUnavailable, UsageCount
from metering.limiter.redis import RedisLimiter
from metering.models import QuotaCredit, RollupBatch, UsageRollup
from metering.redis_safety import RedisSafety, redis_safety_inspect, redis_safety_unreachable
from metering.selectors.counts import OUTCOMES, Tally
from metering.selectors.periods import BillingPeriod, PeriodSwitch, account_billing_periods
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
        return _live_usage_or_raise(account_id, start, end), True
    except LimiterUnavailable:
        return {}, False


def _live_usage_or_raise(
    account_id: int, start: datetime, end: datetime
) -> dict[int, list[UsageCount]]:
    """The limiter's counters for minutes in [start, end); raises ``LimiterUnavailable``."""
    live = get_limiter().live_usage(account_id)
    first, last = start.timestamp(), end.timestamp()
    return {minute: counts for minute, counts in live.items() if first <= minute < last}


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
    return _units_once(account_id, start, end, live)


def quota_seed_units(*, account_id: int, period_start: datetime, period_end: datetime) -> int:
    """What a missing quota counter starts from: the period's rollups plus every minute Redis
    still holds and the rollup has not applied, each minute counted once (the rule at the top
    of this module: counters read first, then rollups and their minutes in one statement).

    Redis may have lost the counter but kept usage hashes (an eviction, a restart from a
    snapshot): those minutes are in no rollup yet and count here. Unlike ``period_units`` this
    raises ``LimiterUnavailable`` when the counters cannot be read, so the request fails by
    METERING_FAIL_MODE and the next one seeds again: a seed from the rollups alone would stay
    in Redis for the rest of the period and hand out the unrolled minutes a second time.
    """
    start, end = period_minutes(period_start, period_end)
    live = _live_usage_or_raise(account_id, start, end)
    return _units_once(account_id, start, end, live)


def _units_once(
    account_id: int, start: datetime, end: datetime, live: dict[int, list[UsageCount]]
) -> int:
    """Rollups of [start, end) plus the ``live`` minutes they do not hold yet, read in one
    statement after ``live`` was read."""
    totals = UsageRollup.objects.filter(
        account_id=account_id, minute__gte=start, minute__lt=end
    ).aggregate(units=Sum("units"), **_overlap_markers(list(live)))
    units = totals["units"] or 0
    for minute, counts in live.items():
        if not totals[f"applied_{minute}"]:
            units += sum(count.units for count in counts)
    return units


def metering_redis_safety() -> RedisSafety | None:
    """Whether the limiter's Redis is configured to keep billing data (persistence, eviction
    policy, cluster slots); None when the limiter is in-process (the embedded mode).

    Read through the limiter's own batch client, so it asks the server (or every primary of
    the cluster) the API uses, with the rollup's timeout."""
    limiter = get_limiter()
    if not isinstance(limiter, RedisLimiter):
        return None
    try:
        # Made on first use: a cluster client connects as it is made.
        client = limiter.batch_client
    except (RedisError, RedisClusterException) as exc:
        return redis_safety_unreachable(exc)
    return redis_safety_inspect(client)


def period_credit_units(*, account_id: int, period_start: datetime) -> int:
    """Units the operator credited the account for the period starting at ``period_start``."""
    credits = QuotaCredit.objects.filter(account_id=account_id, period_start=period_start)
    return credits.aggregate(units=Sum("units"))["units"] or 0


def period_included_units(account: Account, period_start: datetime) -> int:
    """The tier's included units plus the operator's credits for this period."""
    credits = period_credit_units(account_id=account.pk, period_start=period_start)
    return account.tier.included_units + credits


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    """An account's usage against its quota in its current period, as the admin lists it."""

    units: int
    included_units: int
    credited_units: int

    @property
    def quota(self) -> int:
        return self.included_units + self.credited_units

    @property
    def percent(self) -> int | None:
        """Whole percent of the quota used, rounded down; None: a zero quota has no percentage."""
        return self.units * 100 // self.quota if self.quota > 0 else None


def accounts_period_usage(
    accounts: Iterable[Account], *, now: datetime | None = None
) -> dict[int, PeriodUsage]:
    """Usage vs quota for a page of accounts (each needs its tier loaded), in two queries
    whatever the page size: one sum of rollups, one sum of credits, each over every account's
    own current period.

    Counts rolled-up usage only (the rollup runs every minute), so the admin's list costs no
    limiter call per row; ``period_units`` adds the live minutes for one account.
    """
    accounts = list(accounts)
    if not accounts:
        return {}
    now = now or timezone.now()
    periods = {account.pk: account.current_period(now) for account in accounts}
    in_period = reduce(
        operator.or_,
        (
            Q(account_id=pk, minute__gte=start, minute__lt=end)
            for pk, (start, end) in periods.items()
        ),
    )
    credited_in_period = reduce(
        operator.or_,
        (Q(account_id=pk, period_start=start) for pk, (start, _) in periods.items()),
    )
    units = _units_by_account(UsageRollup.objects.filter(in_period))
    credits = _units_by_account(QuotaCredit.objects.filter(credited_in_period))
    return {
        account.pk: PeriodUsage(
            units=units.get(account.pk) or 0,
            included_units=account.tier.included_units,
            credited_units=credits.get(account.pk) or 0,
        )
        for account in accounts
    }


def usage_rolled_up_at() -> datetime | None:
    """When the rollup last applied usage (its newest batch), the moment figures read from the
    rollups alone (the admin's account list) are as of; None: nothing was ever rolled up.

    Read by primary key, the order batches are written in, so no scan of the table: a run that
    found nothing to apply writes no batch, and then nothing changed since either."""
    return RollupBatch.objects.order_by("-pk").values_list("applied_at", flat=True).first()


def _units_by_account(rows: QuerySet[UsageRollup] | QuerySet[QuotaCredit]) -> dict[int, int]:
    """The rows' units summed per account (one ``GROUP BY`` query)."""
    return dict(
        rows.values("account_id")
        .annotate(total=Sum("units"))
        .values_list("account_id", "total")
        .order_by()
    )


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    units: int
    requests: int
    # Units counted against the quota from its start up to and including this day: from the
    # period's start, or again from a tier switch, whose tier has included units of its own.
    cumulative: int
    refused_rate: int = 0
    refused_quota: int = 0
    refused_cap: int = 0
    errors: int = 0

    @property
    def refused(self) -> int:
        return self.refused_rate + self.refused_quota + self.refused_cap


@dataclass(frozen=True, slots=True)
class EndpointUsage:
    endpoint: str
    units: int
    requests: int
    refused: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class KeyUsage:
    # None: a key deleted since; its usage still counts.
    key_id: int | None
    name: str
    prefix: str
    units: int
    requests: int
    refused: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class RangeUsage:
    """Usage of any stretch of time: totals and the split per endpoint and per key."""

    start: datetime
    end: datetime
    # The slice the filters select (the whole account without filters).
    units: int
    requests: int
    refused_rate: int
    refused_quota: int
    refused_cap: int
    errors: int
    endpoints: list[EndpointUsage]
    keys: list[KeyUsage]
    # Every endpoint the account called in the range, whatever the filters.
    endpoint_names: list[str]
    # False: the limiter did not answer, so the last minutes are missing from the figures.
    live_included: bool = True

    @property
    def refused(self) -> int:
        return self.refused_rate + self.refused_quota + self.refused_cap


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """A billing period's usage (the current one unless another was asked for) against its
    quota."""

    period_start: datetime
    period_end: datetime
    # The slice the filters select (the whole account without filters), over the whole period.
    units: int
    requests: int
    # The whole account, whatever the filters, since ``quota_start``: what the quota is
    # measured against.
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
    refused_rate: int = 0
    refused_quota: int = 0
    refused_cap: int = 0
    errors: int = 0
    # Where the quota counts from: the period's start, or the last tier switch in it.
    quota_start: datetime | None = None
    switches: tuple[PeriodSwitch, ...] = ()
    # False: a past period.
    current: bool = True
    # The tier the period began on ("" when not recorded).
    tier_name: str = ""

    @property
    def refused(self) -> int:
        return self.refused_rate + self.refused_quota + self.refused_cap

    @property
    def remaining_included_units(self) -> int:
        return max(0, self.included_units - self.account_units)

    @property
    def percent_of_included(self) -> float:
        if self.included_units <= 0:
            return 100.0 if self.account_units else 0.0
        return 100.0 * self.account_units / self.included_units


def _period_days(start: datetime, end: datetime) -> list[date]:
    """Every (UTC) day the period [start, end) touches."""
    first = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


class _Cell(NamedTuple):
    """The finest split of a period's usage: one day, one key (None: deleted), one endpoint,
    and whether it counts against the quota (on or after the quota's start)."""

    day: date
    key_id: int | None
    endpoint: str
    counted: bool = True


_Part = TypeVar("_Part", bound=Hashable)


def usage_summary(
    *,
    account: Account,
    now: datetime | None = None,
    key_id: int | None = None,
    endpoint: str | None = None,
    period: BillingPeriod | None = None,
) -> UsageSummary:
    """A billing period's usage: totals, every day of the period (zeros included), and the
    split per endpoint and per key. ``key_id`` and ``endpoint`` narrow the figures (not the
    quota, which is the account's). ``period``: one of ``account_billing_periods``; None, the
    running one, whole — also across a tier switch, after which only the quota counts again."""
    now = now or timezone.now()
    if period is None:
        period = account_billing_periods(account, now=now, limit=1)[0]
    if period.current:
        # The account's own period start is the quota's (a switch's minute after one).
        quota_start = max(period.start, account.current_period(now)[0])
    else:
        quota_start = period.quota_start
    cells, live_included = _period_cells(
        account.pk, period.start, period.end, quota_start=quota_start
    )
    selected = _select(cells, key_id=key_id, endpoint=endpoint)
    days = _days_usage(
        period.start,
        period.end,
        _sum_by(selected, lambda cell: cell.day),
        _sum_by({c: t for c, t in selected.items() if c.counted}, lambda cell: cell.day),
        quota_day=quota_start.astimezone(UTC).date(),
    )
    total = _sum_all(selected)
    account_units = sum(tally.units for cell, tally in cells.items() if cell.counted)
    included = _included_units(account, period, quota_start)
    tier = account.tier
    return UsageSummary(
        period_start=period.start,
        period_end=period.end,
        units=total.units,
        requests=total.requests,
        refused_rate=total.refused_rate,
        refused_quota=total.refused_quota,
        refused_cap=total.refused_cap,
        errors=total.errors,
        account_units=account_units,
        included_units=included,
        overage_units=max(0, account_units - included),
        overage_policy=tier.overage_policy,
        overage_cap=tier.overage_cap_units(),
        days=days,
        endpoints=_endpoints_usage(_sum_by(selected, lambda cell: cell.endpoint)),
        keys=_keys_usage(account.pk, _sum_by(selected, lambda cell: cell.key_id)),
        live_included=live_included,
        key_id=key_id,
        endpoint=endpoint,
        endpoint_names=sorted({cell.endpoint for cell in cells}),
        quota_start=quota_start,
        switches=period.switches,
        current=period.current,
        tier_name=period.tier_name,
    )


def _included_units(account: Account, period: BillingPeriod, quota_start: datetime) -> int:
    """The quota of the period's last stretch: its tier's included units (the account's tier
    now for the running period) plus the credits granted for it."""
    credits = period_credit_units(account_id=account.pk, period_start=quota_start)
    if period.current or period.included_units is None:
        return account.tier.included_units + credits
    return period.included_units + credits


def usage_range(
    *,
    account: Account,
    start: datetime,
    end: datetime,
    key_id: int | None = None,
    endpoint: str | None = None,
) -> RangeUsage:
    """Usage in [start, end) whatever the periods: totals, per endpoint and per key."""
    cells, live_included = _period_cells(account.pk, start, end, quota_start=start)
    selected = _select(cells, key_id=key_id, endpoint=endpoint)
    total = _sum_all(selected)
    return RangeUsage(
        start=start,
        end=end,
        units=total.units,
        requests=total.requests,
        refused_rate=total.refused_rate,
        refused_quota=total.refused_quota,
        refused_cap=total.refused_cap,
        errors=total.errors,
        endpoints=_endpoints_usage(_sum_by(selected, lambda cell: cell.endpoint)),
        keys=_keys_usage(account.pk, _sum_by(selected, lambda cell: cell.key_id)),
        endpoint_names=sorted({cell.endpoint for cell in cells}),
        live_included=live_included,
    )


def _select(
    cells: dict[_Cell, Tally], *, key_id: int | None, endpoint: str | None
) -> dict[_Cell, Tally]:
    return {
        cell: tally
        for cell, tally in cells.items()
        if (key_id is None or cell.key_id == key_id)
        and (endpoint is None or cell.endpoint == endpoint)
    }


def _sum_all(cells: dict[_Cell, Tally]) -> Tally:
    total = Tally()
    for tally in cells.values():
        total.add(tally)
    return total


def _period_cells(
    account_id: int, period_start: datetime, period_end: datetime, *, quota_start: datetime
) -> tuple[dict[_Cell, Tally], bool]:
    """The whole account's usage in the period per cell, rolled-up and live minutes merged, each
    minute counted from one place only; and whether the limiter answered."""
    start, end = period_minutes(period_start, period_end)
    counted_from, _ = period_minutes(quota_start, period_end)
    live, live_included = _live_usage(account_id, start, end)
    cells, applied = _rollup_cells(
        account_id, start, end, counted_from=counted_from, live_minutes=list(live)
    )
    for minute, counts in live.items():
        if minute not in applied:
            _add_live_minute(cells, minute, counts, counted_from=counted_from)
    return cells, live_included


def _rollup_cells(
    account_id: int,
    start: datetime,
    end: datetime,
    *,
    counted_from: datetime,
    live_minutes: list[int],
) -> tuple[defaultdict[_Cell, Tally], set[int]]:
    """The rollups of the minutes [start, end) per cell, and which of ``live_minutes`` they
    already hold: one statement, so both come from the same snapshot."""
    # Read as plain mappings: the marker columns are named after the minutes.
    rows: list[Mapping[str, Any]] = list(
        UsageRollup.objects.filter(account_id=account_id, minute__gte=start, minute__lt=end)
        .values(
            "api_key_id",
            "endpoint",
            day=TruncDate("minute", tzinfo=UTC),
            counted=ExpressionWrapper(Q(minute__gte=counted_from), output_field=BooleanField()),
        )
        .annotate(
            units=Sum("units"),
            requests=Sum("requests"),
            **{name: Sum(name) for name in OUTCOMES},
            **_overlap_markers(live_minutes),
        )
        .order_by()
    )
    applied = {minute for minute in live_minutes if any(row[f"applied_{minute}"] for row in rows)}
    cells: defaultdict[_Cell, Tally] = defaultdict(Tally)
    for row in rows:
        cell = _Cell(
            day=row["day"],
            key_id=row["api_key_id"],
            endpoint=row["endpoint"],
            counted=bool(row["counted"]),
        )
        cells[cell].add(Tally.from_row(dict(row)))
    return cells, applied


def _add_live_minute(
    cells: defaultdict[_Cell, Tally],
    minute: int,
    counts: list[UsageCount],
    *,
    counted_from: datetime,
) -> None:
    """Add one live minute the rollup has not applied yet: the limiter's counters for it."""
    moment = _minute_datetime(minute)
    for count in counts:
        cell = _Cell(
            day=moment.date(),
            key_id=count.key_id,
            endpoint=count.endpoint,
            counted=moment >= counted_from,
        )
        cells[cell].add(Tally.from_count(count))


def _sum_by(cells: dict[_Cell, Tally], part: Callable[[_Cell], _Part]) -> dict[_Part, Tally]:
    """The cells' counts added up per ``part`` of a cell (its day, key, endpoint)."""
    totals: defaultdict[_Part, Tally] = defaultdict(Tally)
    for cell, tally in cells.items():
        totals[part(cell)].add(tally)
    return dict(totals)


def _days_usage(
    period_start: datetime,
    period_end: datetime,
    per_day: dict[date, Tally],
    counted_per_day: dict[date, Tally],
    *,
    quota_day: date,
) -> list[DayUsage]:
    """Every day of the period, zeros included, each with the units counted against the quota
    so far: from the period's start, again from the day of a tier switch."""
    days, running = [], 0
    for day in _period_days(period_start, period_end):
        tally = per_day.get(day, Tally())
        if day == quota_day:
            running = 0
        running += (counted_per_day.get(day, Tally()) if day >= quota_day else tally).units
        days.append(
            DayUsage(
                day=day,
                units=tally.units,
                requests=tally.requests,
                cumulative=running,
                refused_rate=tally.refused_rate,
                refused_quota=tally.refused_quota,
                refused_cap=tally.refused_cap,
                errors=tally.errors,
            )
        )
    return days


def _endpoints_usage(per_endpoint: dict[str, Tally]) -> list[EndpointUsage]:
    """Usage per endpoint, most units first."""
    usages = [
        EndpointUsage(
            endpoint=name,
            units=tally.units,
            requests=tally.requests,
            refused=tally.refused,
            errors=tally.errors,
        )
        for name, tally in per_endpoint.items()
    ]
    return sorted(usages, key=lambda usage: (-usage.units, usage.endpoint))


def _keys_usage(account_id: int, per_key: dict[int | None, Tally]) -> list[KeyUsage]:
    """Usage per key, most units first, every key deleted since on one "Deleted key" line: its
    rollups say None, its live counters still carry its old id."""
    known: dict[int | None, ApiKey] = {
        key.pk: key
        for key in ApiKey.objects.filter(account_id=account_id, pk__in=[k for k in per_key if k])
    }
    merged: defaultdict[int | None, Tally] = defaultdict(Tally)
    for key_id, tally in per_key.items():
        merged[key_id if key_id in known else None].add(tally)
    usages = [_key_usage(known.get(key_id), tally) for key_id, tally in merged.items()]
    return sorted(usages, key=lambda usage: (-usage.units, usage.name))


def _key_usage(key: ApiKey | None, tally: Tally) -> KeyUsage:
    """One line of the per-key table; ``key`` None: the deleted keys' line."""
    return KeyUsage(
        key_id=key.pk if key else None,
        name=key.name if key else "Deleted key",
        prefix=key.prefix if key else "",
        units=tally.units,
        requests=tally.requests,
        refused=tally.refused,
        errors=tally.errors,
    )


def account_endpoint_called(*, account_id: int, endpoint: str) -> bool:
    """Whether the account has usage of ``endpoint`` at any time, rolled up or live."""
    if UsageRollup.objects.filter(account_id=account_id, endpoint=endpoint).exists():
        return True
    live, _ = _live_usage(
        account_id, datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    )
    return any(count.endpoint == endpoint for counts in live.values() for count in counts)
