"""The limiter, against both backends: exact under concurrency, GCRA pacing, quota policies,
give-back, and the drain/discard protocol the rollup relies on.

Redis cases use a key prefix of their own, emptied around each test (tests/metering/limiters.py);
the multi-process case uses database 15.
"""

import multiprocessing
import threading

import pytest

from metering.limiter.base import Outcome
from metering.limiter.local import LocalLimiter
from metering.limiter.redis import RedisLimiter
from tests.metering.limiters import NOW, backend, hit, make_policy
from tests.metering.workers import hammer_redis
from tests.services import redis_url

__all__ = ["backend"]  # the fixture, used by name

# The processes of the multi-process case share this prefix (the other cases take the one of
# their own that tests.metering.limiters gives them).
PREFIX = "mdtest"


def redis_test_url() -> str:
    return redis_url().rsplit("/", 1)[0] + "/15"


def test_missing_quota_counter_asks_for_a_seed_and_counts_nothing(backend):
    policy = make_policy(quota=10)

    first = backend.hit(account_id=1, key_id=1, endpoint="x", cost=1, policy=policy, now=NOW)
    seeded = backend.hit(
        account_id=1, key_id=1, endpoint="x", cost=1, policy=policy, seed=7, now=NOW
    )

    assert first.outcome == Outcome.NEEDS_SEED
    assert seeded.outcome == Outcome.ADMITTED
    assert seeded.quota_used == 8
    assert backend.live_usage(1)[int(NOW // 60 * 60)][0].requests == 1


def test_burst_then_one_unit_per_interval(backend):
    policy = make_policy(rate=60, burst=3)  # one unit back per second

    burst = [hit(backend, policy).outcome for _ in range(4)]
    refused = hit(backend, policy)
    after_one_second = hit(backend, policy, now=NOW + 1)

    assert burst == [Outcome.ADMITTED] * 3 + [Outcome.RATE_LIMITED]
    assert refused.retry_after == pytest.approx(1.0)
    assert refused.rate_remaining == 0
    assert after_one_second.outcome == Outcome.ADMITTED


def test_cost_counts_units_not_requests(backend):
    policy = make_policy(rate=10)

    results = [hit(backend, policy, cost=4).outcome for _ in range(3)]

    assert results == [Outcome.ADMITTED, Outcome.ADMITTED, Outcome.RATE_LIMITED]
    usage = backend.live_usage(1)[int(NOW // 60 * 60)][0]
    assert (usage.units, usage.requests) == (8, 2)


def test_remaining_and_reset_follow_the_bucket(backend):
    policy = make_policy(rate=60, burst=10)

    decision = hit(backend, policy, cost=4)

    assert decision.rate_remaining == 6
    assert decision.rate_reset == pytest.approx(4.0)


def test_block_policy_refuses_past_the_quota_until_the_period_ends(backend):
    policy = make_policy(quota=5)

    outcomes = [hit(backend, policy, cost=2).outcome for _ in range(3)]
    refused = hit(backend, policy, cost=1, now=NOW + 1)

    assert outcomes == [Outcome.ADMITTED, Outcome.ADMITTED, Outcome.QUOTA_EXCEEDED]
    # One unit is left: a 1-unit call still fits.
    assert refused.outcome == Outcome.ADMITTED
    final = hit(backend, policy, cost=1, now=NOW + 2)
    assert final.outcome == Outcome.QUOTA_EXCEEDED
    assert final.retry_after == pytest.approx(policy.period_end.timestamp() - (NOW + 2))


def test_bill_policy_counts_overage_and_stops_at_the_spend_cap(backend):
    uncapped = make_policy(quota=3, overage_policy="bill")
    capped = make_policy(quota=3, overage_policy="bill", cap=2)

    free_running = [hit(backend, uncapped, account_id=1).outcome for _ in range(6)]
    with_cap = [hit(backend, capped, account_id=2).outcome for _ in range(6)]

    assert free_running == [Outcome.ADMITTED] * 6
    assert with_cap == [Outcome.ADMITTED] * 5 + [Outcome.QUOTA_EXCEEDED]


def test_free_endpoint_passes_when_the_quota_is_spent(backend):
    policy = make_policy(quota=1)
    hit(backend, policy)

    free = hit(backend, policy, cost=0, endpoint="usage")

    assert free.outcome == Outcome.ADMITTED


def test_give_back_restores_rate_quota_and_usage(backend):
    policy = make_policy(rate=60, burst=3, quota=100)
    kept = hit(backend, policy, cost=1)
    returned = hit(backend, policy, cost=2)

    assert backend.give_back(returned, now=NOW)
    after = hit(backend, policy, cost=2)

    assert kept.counted and after.outcome == Outcome.ADMITTED
    assert backend.quota_used(1, policy) == 3
    usage = backend.live_usage(1)[int(NOW // 60 * 60)][0]
    assert (usage.units, usage.requests) == (3, 2)


def test_drain_seals_a_minute_and_repeats_until_discarded(backend):
    policy = make_policy()
    decision = hit(backend, policy, cost=2)
    minute = int(NOW // 60 * 60)

    buckets = backend.pending_buckets(before=minute + 60)
    first = backend.drain(buckets)
    # A give-back that comes after the seal changes nothing: the counters are final.
    late = backend.give_back(decision, now=NOW)
    again = backend.drain(buckets)
    backend.discard(buckets)

    assert [(b.account_id, b.minute) for b in buckets] == [(1, minute)]
    assert first == again
    assert first[buckets[0]][0].units == 2
    assert late is False
    assert backend.pending_buckets(before=minute + 60) == []
    assert backend.live_usage(1) == {}


def test_only_minutes_before_the_cutoff_are_pending(backend):
    policy = make_policy()
    hit(backend, policy, now=NOW)
    hit(backend, policy, now=NOW + 60)
    minute = int(NOW // 60 * 60)

    assert [b.minute for b in backend.pending_buckets(before=minute + 60)] == [minute]


def test_threads_never_admit_past_the_limit():
    """8 threads x 50 calls on a burst of 100, with a refill slower than the test: exactly 100."""
    limiter = LocalLimiter()
    policy = make_policy(rate=1, burst=100)
    start = threading.Barrier(8)
    admitted = []

    def worker():
        start.wait()
        count = 0
        for _ in range(50):
            count += limiter.hit(
                account_id=1, key_id=1, endpoint="lookup", cost=1, policy=policy, seed=0
            ).counted
        admitted.append(count)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(admitted) == 100


def test_threads_never_spend_past_the_quota():
    limiter = LocalLimiter()
    policy = make_policy(rate=100_000, quota=100)
    start = threading.Barrier(8)
    admitted = []

    def worker():
        start.wait()
        admitted.append(
            sum(
                limiter.hit(
                    account_id=1, key_id=1, endpoint="lookup", cost=1, policy=policy, seed=0
                ).counted
                for _ in range(50)
            )
        )

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(admitted) == 100
    assert limiter.quota_used(1, policy) == 100


@pytest.mark.redis
@pytest.mark.parametrize(
    "policy_fields",
    [
        # The rate limit decides: a burst of 100 that refills one unit a minute.
        {"rate_per_minute": 1, "burst": 100, "quota": 1_000_000},
        # The quota decides: the rate is far above what the test can send.
        {"rate_per_minute": 1_000_000, "burst": 1_000_000, "quota": 100},
    ],
    ids=["rate", "quota"],
)
def test_processes_never_admit_past_the_limit_on_redis(policy_fields):
    """8 processes x 50 calls against one account on Redis: exactly 100 admitted."""
    url = redis_test_url()
    limiter = RedisLimiter(url, timeout_ms=1000, prefix=PREFIX)
    limiter.reset()
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    processes = [
        context.Process(target=hammer_redis, args=(url, PREFIX, policy_fields, 50, start, results))
        for _ in range(8)
    ]
    for process in processes:
        process.start()
    start.set()
    admitted = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert sum(admitted) == 100
    minute_counts = [c for counts in limiter.live_usage(1).values() for c in counts]
    assert sum(c.units for c in minute_counts) == 100
    assert sum(c.requests for c in minute_counts) == 100
    limiter.reset()
