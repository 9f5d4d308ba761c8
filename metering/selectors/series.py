"""Usage as a time series: units, requests, refused calls and errors per minute, hour or day of a
range, zeros included, narrowed to a key and an endpoint.

Read as ``usage.py`` reads a period, each minute counted once: the limiter's counters first,
then one SQL statement sums the rollups per bucket and tells, per live minute, whether the
rollup applied it already (see ``metering.selectors.usage``). The overlap markers look at every
row of the account, the filters only at what is summed, so a minute applied for another key is
never taken from the counters again.

The statement is read with a server-side cursor and the buckets are yielded as they come, so a
CSV of years of hours streams without holding them.
"""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from django.db.models import Q, Sum
from django.db.models.functions import Trunc

from metering.limiter.base import UsageCount
from metering.models import UsageRollup
from metering.selectors.counts import OUTCOMES, Tally
from metering.selectors.usage import _live_usage, _overlap_markers, period_minutes

Granularity = Literal["minute", "hour", "day"]
GRANULARITIES: tuple[Granularity, ...] = ("minute", "hour", "day")
STEP: dict[Granularity, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
# The longest range each granularity answers on a page or in the API (about 1,500 buckets at
# most, a chart's worth), and in a CSV export, which streams.
MAX_RANGE: dict[Granularity, timedelta] = {
    "minute": timedelta(days=1),
    "hour": timedelta(days=62),
    "day": timedelta(days=1_000),
}
MAX_EXPORT_RANGE: dict[Granularity, timedelta] = {
    "minute": timedelta(days=31),
    "hour": timedelta(days=1_000),
    "day": timedelta(days=3_700),
}


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """One bucket of a series: [start, start + step)."""

    start: datetime
    units: int
    requests: int
    refused_rate: int
    refused_quota: int
    refused_cap: int
    errors: int

    @property
    def refused(self) -> int:
        return self.refused_rate + self.refused_quota + self.refused_cap


def bucket_start(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the (UTC) minute, hour or day ``moment`` falls in."""
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if granularity in ("hour", "day"):
        moment = moment.replace(minute=0)
    if granularity == "day":
        moment = moment.replace(hour=0)
    return moment


def usage_series(
    *,
    account_id: int,
    start: datetime,
    end: datetime,
    granularity: Granularity,
    key_id: int | None = None,
    endpoint: str | None = None,
) -> Iterator[UsagePoint]:
    """Every bucket of usage in [start, end), oldest first, zeros included. A range that does
    not start on a bucket's boundary starts with a partial bucket (labelled by its boundary)."""
    first, last = period_minutes(start, end)
    if last <= first:
        return
    live, _ = _live_usage(account_id, first, last)
    live_by_bucket: defaultdict[datetime, dict[int, list[UsageCount]]] = defaultdict(dict)
    for minute, counts in live.items():
        chosen = [
            count
            for count in counts
            if (key_id is None or count.key_id == key_id)
            and (endpoint is None or count.endpoint == endpoint)
        ]
        at = bucket_start(datetime.fromtimestamp(minute, UTC), granularity)
        live_by_bucket[at][minute] = chosen

    rows = _bucket_rows(
        account_id, first, last, granularity, key_id, endpoint, live_minutes=list(live)
    )
    row = next(rows, None)
    step = STEP[granularity]
    at = bucket_start(first, granularity)
    while at < last:
        tally = Tally()
        applied: set[int] = set()
        if row is not None and row["bucket"] == at:
            tally.add(Tally.from_row(row))
            applied = {minute for minute in live_by_bucket.get(at, {}) if row[f"applied_{minute}"]}
            row = next(rows, None)
        for minute, counts in live_by_bucket.get(at, {}).items():
            if minute not in applied:
                for count in counts:
                    tally.add(Tally.from_count(count))
        yield UsagePoint(
            start=at,
            units=tally.units,
            requests=tally.requests,
            refused_rate=tally.refused_rate,
            refused_quota=tally.refused_quota,
            refused_cap=tally.refused_cap,
            errors=tally.errors,
        )
        at = bucket_start(at + step, granularity)


def _bucket_rows(
    account_id: int,
    first: datetime,
    last: datetime,
    granularity: Granularity,
    key_id: int | None,
    endpoint: str | None,
    *,
    live_minutes: list[int],
) -> Iterator[dict[str, Any]]:
    """The rollups of [first, last) summed per bucket (the filters applied to the sums only),
    with a marker per live minute, oldest bucket first, from a server-side cursor."""
    chosen = Q()
    if key_id is not None:
        chosen &= Q(api_key_id=key_id)
    if endpoint is not None:
        chosen &= Q(endpoint=endpoint)
    condition = chosen if chosen else None
    sums = {name: Sum(name, filter=condition) for name in ("units", "requests", *OUTCOMES)}
    rows = (
        UsageRollup.objects.filter(account_id=account_id, minute__gte=first, minute__lt=last)
        .annotate(bucket=Trunc("minute", granularity, tzinfo=UTC))
        .values("bucket")
        .annotate(**sums, **_overlap_markers(live_minutes))
        .order_by("bucket")
    )
    for row in rows.iterator(chunk_size=2000):
        summed: dict[str, Any] = dict(row)
        # SQLite hands the truncated moment back naive; it is UTC.
        if summed["bucket"].tzinfo is None:
            summed["bucket"] = summed["bucket"].replace(tzinfo=UTC)
        yield summed
