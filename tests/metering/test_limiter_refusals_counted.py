"""Refused calls (by reason) and errors are counted beside the billed units, in the limiter call
each request makes anyway, and the rollup carries them to their own columns, never billed
(issue 16)."""

import time
from datetime import UTC, datetime

import pytest

from metering.limiter import get_limiter
from metering.limiter.base import Outcome
from metering.models import UsageRollup
from metering.services import usage_rollup
from tests.metering.limiters import NOW, backend, counts, hit, make_policy
from tests.metering.spending import spend

__all__ = ["backend"]


def test_a_rate_refusal_is_counted_and_changes_nothing_else(backend):
    policy = make_policy(rate=60, burst=2, quota=100)
    hit(backend, policy, cost=2)

    refused = [hit(backend, policy, cost=1) for _ in range(3)]

    assert {decision.outcome for decision in refused} == {Outcome.RATE_LIMITED}
    assert backend.quota_used(1, policy) == 2
    assert counts(backend) == (2, 1, 3, 0, 0, 0)


def test_a_quota_refusal_on_a_block_tier_counts_as_quota(backend):
    policy = make_policy(quota=3)
    hit(backend, policy, cost=3)

    assert hit(backend, policy, cost=1).outcome == Outcome.QUOTA_EXCEEDED
    assert counts(backend) == (3, 1, 0, 1, 0, 0)


def test_a_refusal_by_the_spend_cap_counts_as_cap(backend):
    policy = make_policy(quota=2, overage_policy="bill", cap=1)
    hit(backend, policy, cost=3)

    assert hit(backend, policy, cost=1).outcome == Outcome.QUOTA_EXCEEDED
    assert counts(backend) == (3, 1, 0, 0, 1, 0)


def test_a_minute_of_refusals_alone_is_still_drained(backend):
    policy = make_policy(rate=60, burst=1, quota=100)
    hit(backend, policy, cost=1, account_id=2)
    hit(backend, policy, cost=1, account_id=2, endpoint="other", now=NOW + 0.5)

    drained = backend.drain(backend.pending_buckets(before=int(NOW) + 60))

    [found] = drained.values()
    assert [(c.endpoint, c.units, c.requests, c.refused_rate) for c in found] == [
        ("lookup", 1, 1, 0),
        ("other", 0, 0, 1),
    ]


def test_an_error_is_counted_by_the_give_back_itself(backend):
    policy = make_policy(quota=100)
    failed = hit(backend, policy, cost=4)

    assert backend.give_back(failed, now=NOW)
    assert counts(backend) == (0, 0, 0, 0, 0, 1)


@pytest.mark.django_db
def test_the_rollup_carries_refusals_and_errors_to_their_columns_unbilled(api_key):
    key = api_key(rate_limit_per_minute=1, burst=3, included_units=10_000)
    past = (time.time() // 60 - 10) * 60
    kept, failed = spend(key, cost=1, at=past, times=2)
    get_limiter().give_back(failed, now=past)
    limiter = get_limiter()
    refused = limiter.hit(
        account_id=key.account_id,
        key_id=key.pk,
        endpoint="lookup",
        cost=3,
        policy=kept.policy,
        now=past + 1,
    )
    assert refused.outcome == Outcome.RATE_LIMITED

    usage_rollup()

    row = UsageRollup.objects.get(account_id=key.account_id)
    assert (row.minute, row.units, row.requests) == (datetime.fromtimestamp(past, UTC), 1, 1)
    assert (row.refused_rate, row.refused_quota, row.refused_cap, row.errors) == (1, 0, 0, 1)
