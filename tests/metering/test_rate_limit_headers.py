"""The rate-limit headers every metered response carries, read the way a client would: the
IETF draft's RateLimit-Policy / RateLimit (structured-field lists) and the X-RateLimit trio."""

import math
import re
import time

import pytest
from django.utils import timezone

from tests.factories import AccountFactory, ApiKeyFactory, PaidTierFactory

pytestmark = pytest.mark.django_db

ITEM = re.compile(r'^"(?P<name>[a-z0-9_\-.*]+)"(?P<params>(;[a-z][a-z0-9_\-.*]*=\d+)*)$')


def parse_items(value: str) -> dict[str, dict[str, int]]:
    """A structured-field List of quoted-string items with integer parameters (RFC 9651),
    which is all the draft's two fields use. Anything else fails the test."""
    items = {}
    for member in value.split(","):
        match = ITEM.match(member.strip())
        assert match, f"not a valid list member: {member!r}"
        params = {}
        for param in match["params"].split(";")[1:]:
            name, number = param.split("=")
            params[name] = int(number)
        items[match["name"]] = params
    return items


def test_every_response_describes_the_minute_and_period_policies(api_key, call):
    key = api_key(rate_limit_per_minute=10, included_units=100)
    period_end = key.account.current_period()[1]

    response = call(key, "/v1/test/compute")

    policy = parse_items(response["RateLimit-Policy"])
    state = parse_items(response["RateLimit"])
    assert policy == {
        "minute": {"q": 10, "w": 60},
        "period": {"q": 100, "w": round((period_end - key.account.period_start).total_seconds())},
    }
    # 5 of 10 units spent; 30 s until the burst is whole again (one unit every 6 s).
    assert state["minute"] == {"r": 5, "t": 30}
    assert state["period"]["r"] == 95
    seconds_left = (period_end - timezone.now()).total_seconds()
    assert seconds_left - 5 <= state["period"]["t"] <= math.ceil(seconds_left)
    assert response["X-RateLimit-Limit"] == "10"
    assert response["X-RateLimit-Remaining"] == "5"
    assert abs(int(response["X-RateLimit-Reset"]) - (time.time() + 30)) <= 2


def test_remaining_counts_down_and_a_429_carries_the_same_headers(api_key, call):
    key = api_key(rate_limit_per_minute=2, included_units=100)

    responses = [call(key, "/v1/test/lookup") for _ in range(3)]

    remaining = [parse_items(r["RateLimit"])["minute"]["r"] for r in responses]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert remaining == [1, 0, 0]
    refused = responses[-1]
    assert parse_items(refused["RateLimit-Policy"])["minute"] == {"q": 2, "w": 60}
    assert refused["X-RateLimit-Remaining"] == "0"
    assert int(refused["Retry-After"]) == 30


def test_burst_sets_the_quota_and_window_of_the_minute_policy(api_key, call):
    # 60 units a minute, 10 at once: a spent burst is back in 10 s.
    key = api_key(rate_limit_per_minute=60, burst=10)

    response = call(key, "/v1/test/lookup")

    assert parse_items(response["RateLimit-Policy"])["minute"] == {"q": 10, "w": 10}
    assert parse_items(response["RateLimit"])["minute"] == {"r": 9, "t": 1}


def test_an_uncapped_bill_tier_advertises_no_period_limit(call):
    tier = PaidTierFactory(rate_limit_per_minute=100, spend_cap_cents=None)
    key = ApiKeyFactory(account=AccountFactory(tier=tier))

    response = call(key, "/v1/test/lookup")

    assert set(parse_items(response["RateLimit-Policy"])) == {"minute"}
    assert set(parse_items(response["RateLimit"])) == {"minute"}


def test_a_failed_call_reports_its_units_as_returned(api_key, call):
    key = api_key(rate_limit_per_minute=10, included_units=100)

    failed = call(key, "/v1/test/validate")

    state = parse_items(failed["RateLimit"])
    assert failed.status_code == 400
    assert state["minute"] == {"r": 10, "t": 0}
    assert state["period"]["r"] == 100
