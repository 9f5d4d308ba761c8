"""TierThrottle through the API: rate limit, quota (block, bill, spend cap), cost in units,
give-back of non-billable outcomes, and refusals that never reach the counters."""

import math
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from billing.models import Tier
from metering.hotpath import policy_for
from metering.limiter import get_limiter
from metering.limiter.base import Decision, Outcome
from metering.selectors import period_minutes
from portal.keys.cache import key_cache
from tests.factories import (
    AccountFactory,
    ApiKeyFactory,
    PaidTierFactory,
    TierFactory,
    UsageRollupFactory,
)

pytestmark = pytest.mark.django_db


def live_totals(account_id: int) -> tuple[int, int]:
    counts = [c for minute in get_limiter().live_usage(account_id).values() for c in minute]
    return sum(c.units for c in counts), sum(c.requests for c in counts)


def test_over_the_rate_limit_is_a_429_problem_with_retry_after(api_key, call):
    key = api_key(rate_limit_per_minute=3)

    statuses = [call(key, "/v1/test/lookup").status_code for _ in range(3)]
    refused = call(key, "/v1/test/lookup")

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    # One unit comes back every 20 s at 3 units a minute.
    assert refused["Retry-After"] == "20"
    body = refused.json()
    assert body["type"].endswith("/rate-limited/")
    assert body["limit"] == 3
    assert body["policy"] == "minute"
    assert "3 units per minute" in body["detail"]
    assert refused["RateLimit"].startswith('"minute";r=0;')
    assert live_totals(key.account_id) == (3, 3)


def test_endpoints_spend_their_cost_in_units(api_key, call):
    key = api_key(rate_limit_per_minute=12)

    statuses = [call(key, "/v1/test/compute").status_code for _ in range(3)]
    cheap = call(key, "/v1/test/lookup")

    assert statuses == [200, 200, 429]
    assert cheap.status_code == 200
    assert live_totals(key.account_id) == (11, 3)


def test_block_tier_past_its_quota_is_told_to_upgrade(api_key, call, settings):
    key = api_key(rate_limit_per_minute=600, included_units=3)
    period_end = key.account.current_period()[1]

    statuses = [call(key, "/v1/test/lookup").status_code for _ in range(3)]
    refused = call(key, "/v1/test/lookup")

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    body = refused.json()
    assert body["detail"].startswith("This billing period's quota is used up: 3 of the 3 units")
    assert body["detail"].endswith(
        "Upgrade your tier to keep calling before then: see upgrade_url."
    )
    assert body["type"].endswith("/quota-exceeded/")
    assert body["upgrade_url"] == f"{settings.SITE_URL}/pricing/"
    assert (body["limit"], body["used"], body["policy"]) == (3, 3, "period")
    # Retry-After counts down to the end of the period, when the quota renews.
    wait = int(refused["Retry-After"])
    expected = math.ceil((period_end - timezone.now()).total_seconds())
    assert expected - 5 <= wait <= expected
    assert '"period";r=0;' in refused["RateLimit"]


def test_quota_counts_units_not_requests(api_key, call):
    key = api_key(rate_limit_per_minute=600, included_units=7)

    first = call(key, "/v1/test/compute")
    second = call(key, "/v1/test/compute")
    lookup = call(key, "/v1/test/lookup")

    assert (first.status_code, second.status_code, lookup.status_code) == (200, 429, 200)


def test_bill_tier_keeps_working_past_its_quota_and_counts_the_overage(call):
    tier = PaidTierFactory(included_units=2, rate_limit_per_minute=600, spend_cap_cents=None)
    key = ApiKeyFactory(account=AccountFactory(tier=tier))

    statuses = [call(key, "/v1/test/lookup").status_code for _ in range(5)]
    usage = call(key, "/v1/usage").json()

    assert statuses == [200] * 5
    assert (usage["units"], usage["included_units"], usage["overage_units"]) == (5, 2, 3)


def test_bill_tier_stops_at_its_spend_cap(call, settings):
    # 10 cents of overage at 5 cents a unit: 2 units past the 2 included.
    tier = PaidTierFactory(
        included_units=2,
        rate_limit_per_minute=600,
        overage_unit_price_cents=Decimal(5),
        spend_cap_cents=10,
    )
    key = ApiKeyFactory(account=AccountFactory(tier=tier))

    statuses = [call(key, "/v1/test/lookup").status_code for _ in range(5)]
    refused = call(key, "/v1/test/lookup").json()

    assert statuses == [200, 200, 200, 200, 429]
    assert refused["detail"].startswith("This billing period's spend cap is reached: 4 units")
    assert (refused["limit"], refused["overage_policy"]) == (4, Tier.OveragePolicy.BILL)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/test/validate", 400),
        ("/v1/test/missing", 404),
        ("/v1/test/crash", 500),
    ],
)
def test_units_of_a_failed_call_are_given_back_once(api_key, call, path, status, monkeypatch):
    key = api_key(rate_limit_per_minute=10, included_units=1000)
    limiter = get_limiter()
    given_back: list[Decision] = []
    original = limiter.give_back

    def give_back(decision: Decision, **kw: Any) -> bool:
        given_back.append(decision)
        return original(decision, **kw)

    monkeypatch.setattr(limiter, "give_back", give_back)
    before = call(key, "/v1/test/lookup")

    failed = call(key, path)
    after = call(key, "/v1/test/lookup")

    assert failed.status_code == status
    assert len(given_back) == 1
    # The failed call's units are back in the rate window (headers) and nowhere counted.
    assert int(failed["X-RateLimit-Remaining"]) == int(before["X-RateLimit-Remaining"])
    assert int(after["X-RateLimit-Remaining"]) == int(before["X-RateLimit-Remaining"]) - 1
    assert live_totals(key.account_id) == (2, 2)
    assert limiter.quota_used(key.account_id, given_back[0].policy) == 2


def test_a_call_fixed_after_a_400_is_billed_once(api_key, call):
    key = api_key(rate_limit_per_minute=10)

    rejected = call(key, "/v1/test/validate")
    accepted = call(key, "/v1/test/validate", valid="1")

    assert (rejected.status_code, accepted.status_code) == (400, 200)
    assert live_totals(key.account_id) == (2, 1)


def test_refused_keys_never_touch_the_counters(api_key, client, metered_urls):
    key = api_key(rate_limit_per_minute=10)
    wrong_secret = f"{key.prefix}_{'x' * 32}"

    unknown = client.get("/v1/test/lookup", HTTP_AUTHORIZATION=f"Bearer {wrong_secret}")
    missing = client.get("/v1/test/lookup")

    assert (unknown.status_code, missing.status_code) == (401, 401)
    assert "RateLimit" not in unknown
    assert get_limiter().live_usage(key.account_id) == {}


def test_an_endpoint_outside_the_tier_never_touches_the_counters(api_key, call):
    key = api_key(rate_limit_per_minute=10, scopes=[])

    refused = call(key, "/v1/test/lookup")

    assert refused.status_code == 403
    assert get_limiter().live_usage(key.account_id) == {}


def test_a_suspended_account_never_touches_the_counters(call):
    account = AccountFactory(tier=TierFactory(), status="suspended")
    key = ApiKeyFactory(account=account)

    refused = call(key, "/v1/test/lookup")

    assert refused.status_code == 403
    assert get_limiter().live_usage(account.pk) == {}


def test_an_endpoint_costing_more_than_the_burst_is_a_403(api_key, call):
    key = api_key(rate_limit_per_minute=4)

    refused = call(key, "/v1/test/compute")

    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/cost-above-burst/")
    assert get_limiter().live_usage(key.account_id) == {}


def test_first_call_of_a_period_seeds_the_quota_from_rolled_up_usage(api_key, call):
    key = api_key(rate_limit_per_minute=600, included_units=5)
    account = key.account
    start, _ = period_minutes(*account.current_period())
    UsageRollupFactory(account=account, minute=start, units=4)

    statuses = [call(key, "/v1/test/lookup").status_code for _ in range(2)]

    assert statuses == [200, 429]


def test_a_free_call_passes_when_the_quota_is_spent(api_key, call):
    key = api_key(rate_limit_per_minute=600, included_units=1)
    call(key, "/v1/test/lookup")

    usage = call(key, "/v1/usage")

    assert usage.status_code == 200
    assert get_limiter().quota_used(key.account_id, _policy(key)) == 1


def _policy(key):
    return policy_for(key_cache.resolve(key.plaintext))


def test_decision_outcomes_are_kept_for_settling(api_key, call):
    key = api_key(rate_limit_per_minute=1)
    call(key, "/v1/test/lookup")

    refused = call(key, "/v1/test/lookup")

    assert refused.wsgi_request.metering_decision.outcome == Outcome.RATE_LIMITED
