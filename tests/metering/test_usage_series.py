"""usage_series: every minute, hour or day of a range, zeros included, exact against the rollups
plus the live counters (each minute counted once), narrowed to a key and an endpoint, with the
refused and failed calls beside the billed ones."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from metering.limiter import get_limiter
from metering.limiter.base import UsageCount
from metering.selectors import usage_series
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory, UsageRollupFactory
from tests.metering.spending import spend

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 11, 3, tzinfo=UTC)


@pytest.fixture
def account():
    return AccountFactory(tier=TierFactory(rate_limit_per_minute=10_000))


def series(account, start, end, granularity, **filters):
    return list(
        usage_series(
            account_id=account.pk, start=start, end=end, granularity=granularity, **filters
        )
    )


def test_hours_are_exact_and_every_hour_is_there(account):
    key = ApiKeyFactory(account=account)
    UsageRollupFactory(account=account, api_key=key, minute=DAY + timedelta(minutes=5), units=2)
    UsageRollupFactory(account=account, api_key=key, minute=DAY + timedelta(minutes=59), units=3)
    UsageRollupFactory(account=account, api_key=key, minute=DAY + timedelta(hours=2), units=7)
    # Outside the range: not counted.
    UsageRollupFactory(account=account, api_key=key, minute=DAY + timedelta(hours=4), units=100)

    points = series(account, DAY, DAY + timedelta(hours=4), "hour")

    assert [point.start for point in points] == [DAY + timedelta(hours=h) for h in range(4)]
    assert [point.units for point in points] == [5, 0, 7, 0]
    assert [point.requests for point in points] == [2, 0, 1, 0]


def test_days_split_at_utc_midnight_and_a_partial_first_day_keeps_its_label(account):
    UsageRollupFactory(account=account, minute=DAY + timedelta(hours=23, minutes=59), units=4)
    UsageRollupFactory(account=account, minute=DAY + timedelta(days=1), units=6)
    UsageRollupFactory(account=account, minute=DAY + timedelta(hours=9), units=50)

    points = series(account, DAY + timedelta(hours=12, seconds=30), DAY + timedelta(days=2), "day")

    assert [(p.start, p.units) for p in points] == [
        (DAY, 4),  # from 12:01 (the range's first whole minute) on: the 09:00 minute is out
        (DAY + timedelta(days=1), 6),
    ]


def test_minutes(account):
    UsageRollupFactory(account=account, minute=DAY + timedelta(minutes=1), units=1)

    points = series(account, DAY, DAY + timedelta(minutes=3), "minute")

    assert [p.units for p in points] == [0, 1, 0]


def test_refused_and_failed_calls_are_summed_beside_the_units(account):
    UsageRollupFactory(
        account=account,
        minute=DAY,
        units=0,
        requests=0,
        refused_rate=5,
        refused_quota=1,
        refused_cap=2,
        errors=3,
    )
    UsageRollupFactory(account=account, minute=DAY + timedelta(minutes=1), errors=1, units=4)

    (point,) = series(account, DAY, DAY + timedelta(hours=1), "hour")

    assert (point.units, point.requests) == (4, 1)
    assert (point.refused_rate, point.refused_quota, point.refused_cap) == (5, 1, 2)
    assert (point.refused, point.errors) == (8, 4)


def test_key_and_endpoint_narrow_what_is_summed(account):
    laptop = ApiKeyFactory(account=account)
    server = ApiKeyFactory(account=account)
    UsageRollupFactory(account=account, api_key=laptop, minute=DAY, units=1)
    UsageRollupFactory(account=account, api_key=server, minute=DAY, units=10)
    UsageRollupFactory(account=account, api_key=server, endpoint="compute", minute=DAY, units=100)

    end = DAY + timedelta(hours=1)
    assert series(account, DAY, end, "hour", key_id=server.pk)[0].units == 110
    assert series(account, DAY, end, "hour", endpoint="compute")[0].units == 100
    assert series(account, DAY, end, "hour", key_id=laptop.pk, endpoint="compute")[0].units == 0


def test_live_minutes_are_added_once(account):
    key = ApiKeyFactory(account=account)
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    spend(key, times=3)
    spend(key, cost=5, endpoint="compute", times=2)

    points = series(account, hour, hour + timedelta(hours=1), "hour")
    narrowed = series(account, hour, hour + timedelta(hours=1), "hour", endpoint="compute")

    assert (points[0].units, points[0].requests) == (13, 5)
    assert narrowed[0].units == 10


def test_a_minute_the_rollup_applied_for_another_key_is_not_taken_from_the_counters(
    account, monkeypatch
):
    """The counters of a minute the rollup has applied (drained, waiting to be discarded) are
    ignored for every key, also a key that has no row in that minute: the overlap is checked
    against every row of the account, the filters only narrow the sums."""
    laptop = ApiKeyFactory(account=account)
    server = ApiKeyFactory(account=account)
    minute = DAY + timedelta(minutes=7)
    UsageRollupFactory(account=account, api_key=laptop, minute=minute, units=2)
    drained = {
        int(minute.timestamp()): [
            UsageCount(key_id=laptop.pk, endpoint="lookup", units=2, requests=2),
            # Applied too (its row was written under the key's id, then the key deleted).
            UsageCount(key_id=server.pk, endpoint="lookup", units=9, requests=9),
        ]
    }
    monkeypatch.setattr(get_limiter(), "live_usage", lambda account_id: drained)

    points = series(account, DAY, DAY + timedelta(hours=1), "hour", key_id=server.pk)

    assert points[0].units == 0


def test_live_counters_carry_refusals_too(account, monkeypatch):
    minute = DAY + timedelta(minutes=3)
    live = {
        int(minute.timestamp()): [
            UsageCount(key_id=1, endpoint="lookup", units=0, requests=0, refused_rate=6, errors=2)
        ]
    }
    monkeypatch.setattr(get_limiter(), "live_usage", lambda account_id: live)

    (point,) = series(account, DAY, DAY + timedelta(hours=1), "hour")

    assert (point.refused_rate, point.errors, point.units) == (6, 2, 0)


def test_an_empty_range_has_no_points(account):
    assert series(account, DAY, DAY, "hour") == []
