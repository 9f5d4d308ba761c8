"""RateLimit-Policy is formatted once per policy (``Policy.rate_limit_policy``), not per
response: it must still say exactly what the advertised limits say, in their order."""

import pytest

from metering.headers import advertised_limits, rate_limit_headers
from metering.limiter.base import Outcome
from metering.limiter.local import LocalLimiter
from tests.metering.limiters import hit, make_policy


@pytest.mark.parametrize(
    "terms",
    [
        {"rate": 60, "quota": 1000},
        {"rate": 600, "burst": 50, "quota": 10, "overage_policy": "bill", "cap": 5},
        {"rate": 7, "quota": 10, "overage_policy": "bill"},
    ],
)
def test_the_policy_header_lists_every_advertised_limit_in_order(terms):
    policy = make_policy(**terms)
    decision = hit(LocalLimiter(), policy, cost=1)

    expected = ", ".join(
        f'"{item.name}";q={item.quota};w={item.window_seconds}'
        for item in advertised_limits(decision)
    )

    assert rate_limit_headers(decision)["RateLimit-Policy"] == expected


def test_a_refused_or_unmetered_call_advertises_the_same_policy():
    policy = make_policy(rate=60, burst=1, quota=5)
    limiter = LocalLimiter()
    admitted = hit(limiter, policy, cost=1)
    refused = hit(limiter, policy, cost=1)

    assert refused.outcome == Outcome.RATE_LIMITED
    admitted_header = rate_limit_headers(admitted)["RateLimit-Policy"]
    assert rate_limit_headers(refused)["RateLimit-Policy"] == admitted_header
    assert admitted_header == '"minute";q=1;w=1, "period";q=5;w=2592000'
    admitted.outcome = Outcome.UNMETERED
    assert rate_limit_headers(admitted)["RateLimit-Policy"] == admitted_header
