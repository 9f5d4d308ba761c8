"""The single-valued rate-limit headers describe the limit closest to refusing (issue 16).

A quota 429 used to carry the minute window (``X-RateLimit-Limit: 60``,
``X-RateLimit-Remaining: 46``), so a client reading them retried at once. The X- trio and the
first item of ``RateLimit`` now describe the binding limit: the one that refused the call, or on
an admitted call the one with fewer units left (draft-ietf-httpapi-ratelimit-headers-06 §4.1
and §5), and on a refusal they agree with Retry-After.
"""

import time
from decimal import Decimal

import pytest

from tests.factories import AccountFactory, ApiKeyFactory, PaidTierFactory
from tests.metering.test_rate_limit_headers import parse_items

pytestmark = pytest.mark.django_db


def first_item(value: str) -> str:
    return value.split(",")[0].strip().split(";")[0].strip('"')


def test_a_quota_refusal_describes_the_quota_until_the_period_ends(api_key, call):
    key = api_key(rate_limit_per_minute=60, included_units=3)
    period_end = key.account.current_period()[1].timestamp()
    for _ in range(3):
        assert call(key, "/v1/test/lookup").status_code == 200

    refused = call(key, "/v1/test/lookup")

    assert refused.status_code == 429
    assert refused["X-RateLimit-Limit"] == "3"
    assert refused["X-RateLimit-Remaining"] == "0"
    # Reset and Retry-After name the same moment: the end of the period.
    reset = int(refused["X-RateLimit-Reset"])
    assert abs(reset - period_end) <= 2
    assert abs(reset - (time.time() + int(refused["Retry-After"]))) <= 2
    assert first_item(refused["RateLimit"]) == "period"
    period = parse_items(refused["RateLimit"])["period"]
    assert period["r"] == 0
    assert abs(period["t"] - int(refused["Retry-After"])) <= 1
    assert parse_items(refused["RateLimit-Policy"])["period"]["q"] == 3


def test_a_spend_cap_refusal_describes_the_included_units_plus_the_cap(call):
    # 10 cents of overage at 5 cents a unit: 2 units past the 2 included.
    tier = PaidTierFactory(
        included_units=2,
        rate_limit_per_minute=600,
        overage_unit_price_cents=Decimal(5),
        spend_cap_cents=10,
    )
    key = ApiKeyFactory(account=AccountFactory(tier=tier))
    for _ in range(4):
        assert call(key, "/v1/test/lookup").status_code == 200

    refused = call(key, "/v1/test/lookup")

    assert refused.status_code == 429
    assert (refused["X-RateLimit-Limit"], refused["X-RateLimit-Remaining"]) == ("4", "0")


def test_an_admitted_call_near_the_end_of_its_quota_describes_the_quota(api_key, call):
    key = api_key(rate_limit_per_minute=600, included_units=5)
    period_end = key.account.current_period()[1].timestamp()

    responses = [call(key, "/v1/test/lookup") for _ in range(3)]

    last = responses[-1]
    assert last.status_code == 200
    # 2 units left of the period's 5, 597 of the minute's 600: the period binds.
    assert (last["X-RateLimit-Limit"], last["X-RateLimit-Remaining"]) == ("5", "2")
    assert abs(int(last["X-RateLimit-Reset"]) - period_end) <= 2
    assert first_item(last["RateLimit"]) == "period"
    # The policy list keeps its order whatever binds.
    assert last["RateLimit-Policy"].startswith('"minute";')


def test_an_admitted_call_far_from_its_quota_describes_the_minute(api_key, call):
    key = api_key(rate_limit_per_minute=10, included_units=1000)

    response = call(key, "/v1/test/lookup")

    assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("10", "9")
    assert first_item(response["RateLimit"]) == "minute"


def test_a_rate_refusal_resets_when_retry_after_says(api_key, call):
    # 2 units a minute: a spent burst takes 60 s to refill, one unit comes back in 30 s.
    key = api_key(rate_limit_per_minute=2, included_units=1000)
    call(key, "/v1/test/lookup")
    call(key, "/v1/test/lookup")

    refused = call(key, "/v1/test/lookup")

    assert refused.status_code == 429
    assert (refused["X-RateLimit-Limit"], refused["X-RateLimit-Remaining"]) == ("2", "0")
    wait = int(refused["Retry-After"])
    assert wait == 30
    assert abs(int(refused["X-RateLimit-Reset"]) - (time.time() + wait)) <= 2
    assert first_item(refused["RateLimit"]) == "minute"
    assert parse_items(refused["RateLimit"])["minute"] == {"r": 0, "t": wait}
