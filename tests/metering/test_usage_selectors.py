"""usage_summary and period_units: rolled-up rows plus live counters, each minute counted once."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from metering.limiter import get_limiter
from metering.limiter.base import LimiterUnavailable
from metering.selectors import period_units, usage_summary
from metering.services import usage_rollup
from tests.factories import (
    AccountFactory,
    ApiKeyFactory,
    QuotaCreditFactory,
    TierFactory,
    UsageRollupFactory,
)
from tests.metering.spending import spend

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    # Ten days into a 30-day period that started at 09:30 UTC.
    start = (timezone.now() - timedelta(days=10)).replace(
        hour=9, minute=30, second=0, microsecond=0
    )
    return AccountFactory(
        tier=TierFactory(included_units=500, rate_limit_per_minute=10_000),
        period_start=start,
        period_end=start + timedelta(days=30),
    )


def test_summary_adds_rolled_up_and_live_usage_per_day_endpoint_and_key(account):
    laptop = ApiKeyFactory(account=account, name="laptop")
    server = ApiKeyFactory(account=account, name="server")
    start = account.period_start
    UsageRollupFactory(account=account, api_key=laptop, minute=start, units=7, requests=7)
    UsageRollupFactory(
        account=account,
        api_key=server,
        endpoint="compute",
        minute=start + timedelta(days=2),
        units=50,
        requests=10,
    )
    # Before the period: not counted.
    UsageRollupFactory(account=account, api_key=laptop, minute=start - timedelta(minutes=1))
    spend(server, cost=5, endpoint="compute", times=2)
    spend(laptop, times=3)

    summary = usage_summary(account=account)

    assert (summary.units, summary.requests) == (70, 22)
    assert (summary.included_units, summary.overage_units) == (500, 0)
    assert len(summary.days) == 31  # 30 days from 09:30 touch 31 calendar days
    assert summary.days[0].day == start.date()
    assert [d.units for d in summary.days[:3]] == [7, 0, 50]
    assert summary.days[10].units == 13
    assert summary.days[-1].cumulative == 70
    assert [(e.endpoint, e.units, e.requests) for e in summary.endpoints] == [
        ("compute", 60, 12),
        ("lookup", 10, 10),
    ]
    assert [(k.name, k.units) for k in summary.keys] == [("server", 60), ("laptop", 10)]


def test_filters_narrow_the_figures_but_not_the_quota(account):
    laptop = ApiKeyFactory(account=account)
    server = ApiKeyFactory(account=account)
    spend(laptop, times=4)
    spend(server, cost=5, endpoint="compute")

    by_key = usage_summary(account=account, key_id=server.pk)
    by_endpoint = usage_summary(account=account, endpoint="lookup")

    assert (by_key.units, by_key.account_units) == (5, 9)
    assert (by_endpoint.units, by_endpoint.requests) == (4, 4)
    assert by_key.endpoint_names == ["compute", "lookup"]


def test_a_rollup_between_the_two_reads_is_counted_once(account, monkeypatch):
    key = ApiKeyFactory(account=account)
    past = (time.time() // 60 - 10) * 60
    spend(key, times=3, at=past)
    spend(key, times=2)
    limiter = get_limiter()
    read_live = limiter.live_usage

    def live_then_rollup(account_id):
        live = read_live(account_id)
        usage_rollup()  # the job commits right after the page read the counters
        return live

    monkeypatch.setattr(limiter, "live_usage", live_then_rollup)

    assert usage_summary(account=account).units == 5
    assert period_units(account.pk, account.period_start) == 5


def test_counters_sealed_by_a_crashed_rollup_are_counted_once(account, monkeypatch):
    key = ApiKeyFactory(account=account)
    spend(key, times=3, at=(time.time() // 60 - 10) * 60)
    limiter = get_limiter()
    monkeypatch.setattr(limiter, "discard", lambda buckets: None)  # crashed before discarding
    usage_rollup()

    assert limiter.live_usage(account.pk) != {}
    assert usage_summary(account=account).units == 3


def test_period_units_counts_only_the_period(account):
    key = ApiKeyFactory(account=account)
    start = account.period_start
    UsageRollupFactory(account=account, minute=start - timedelta(minutes=1), units=100)
    UsageRollupFactory(account=account, minute=start, units=4)
    spend(key, cost=2)

    assert period_units(account.pk, start) == 6
    assert period_units(account.pk, start, start + timedelta(hours=1)) == 4


def test_credits_raise_the_included_units(account):
    QuotaCreditFactory(account=account, units=250)

    summary = usage_summary(account=account)

    assert summary.included_units == 750


def test_overage_is_what_passes_the_included_units(account):
    UsageRollupFactory(account=account, minute=account.period_start, units=620)

    summary = usage_summary(account=account)

    assert (summary.overage_units, summary.remaining_included_units) == (120, 0)
    assert summary.percent_of_included == pytest.approx(124.0)


def test_first_minute_of_a_new_account_is_in_its_first_period():
    account = AccountFactory(tier=TierFactory(rate_limit_per_minute=100))
    key = ApiKeyFactory(account=account)
    spend(key, times=2)

    assert usage_summary(account=account).units == 2


def test_without_live_counters_the_summary_says_so(account, monkeypatch):
    UsageRollupFactory(account=account, minute=account.period_start, units=9)

    def unavailable(account_id):
        raise LimiterUnavailable("down")

    monkeypatch.setattr(get_limiter(), "live_usage", unavailable)
    summary = usage_summary(account=account)

    assert (summary.units, summary.live_included) == (9, False)


def test_days_cover_the_period_in_utc(account):
    summary = usage_summary(account=account)

    assert summary.days[0].day == account.period_start.astimezone(UTC).date()
    assert summary.days[-1].day == (account.period_end - timedelta(seconds=1)).date()
    assert all(day.units == 0 for day in summary.days)
    assert isinstance(summary.period_start, datetime)
