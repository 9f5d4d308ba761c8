"""A variable cost on both backends: a call reserves its maximum, the settle keeps what it cost
and gives the rest back in one step, exactly once (issue 15)."""

import random
import threading

import pytest

from metering.limiter.base import Outcome, Reservation, Settlement
from tests.metering.limiters import MINUTE, NOW, backend, counts, hit, make_policy

__all__ = ["backend"]


def test_a_settle_keeps_the_actual_units_and_gives_back_the_rest(backend):
    policy = make_policy(rate=60, burst=20, quota=100)
    decision = hit(backend, policy, cost=10)

    result = backend.settle(decision.reservation, units=3, now=NOW)

    assert (result.settlement, result.given_back, result.error) == (Settlement.SETTLED, 7, False)
    assert backend.quota_used(1, policy) == 3
    assert counts(backend) == (3, 1, 0, 0, 0, 0)
    # The rate window got the 7 units back: 17 of the 20 may be spent at once again.
    assert hit(backend, policy, cost=17).outcome == Outcome.ADMITTED
    assert hit(backend, policy, cost=1).outcome == Outcome.RATE_LIMITED


def test_a_settle_sent_twice_gives_back_once_and_answers_the_same(backend):
    policy = make_policy(quota=100)
    decision = hit(backend, policy, cost=10)

    first = backend.settle(decision.reservation, units=4, now=NOW)
    again = backend.settle(decision.reservation, units=4, now=NOW)
    other = backend.settle(decision.reservation, units=0, now=NOW)

    assert first.settlement == Settlement.SETTLED
    assert (again.settlement, again.given_back) == (Settlement.REPEATED, 6)
    assert (other.settlement, other.given_back) == (Settlement.REPEATED, 6)
    assert backend.quota_used(1, policy) == 4
    assert counts(backend) == (4, 1, 0, 0, 0, 0)


def test_settling_the_whole_reservation_still_closes_it(backend):
    # POST /v1/keys/settle with every reserved unit used: nothing goes back, but a later settle
    # (say, a replay with units=0) must not give anything back either.
    policy = make_policy(quota=100)
    decision = hit(backend, policy, cost=5)

    kept = backend.settle(decision.reservation, units=5, now=NOW)
    replay = backend.settle(decision.reservation, units=0, error=True, now=NOW)

    assert (kept.settlement, kept.given_back) == (Settlement.SETTLED, 0)
    assert (replay.settlement, replay.given_back, replay.error) == (Settlement.REPEATED, 0, False)
    assert backend.quota_used(1, policy) == 5


@pytest.mark.parametrize(("units", "kept"), [(-4, 0), (0, 0), (9, 9), (50, 10)])
def test_units_are_held_between_zero_and_the_reservation(backend, units, kept):
    policy = make_policy(quota=100)
    decision = hit(backend, policy, cost=10)

    backend.settle(decision.reservation, units=units, now=NOW)

    assert backend.quota_used(1, policy) == kept
    assert counts(backend)[:2] == (kept, 1)


def test_an_error_gives_back_everything_and_is_counted_as_one(backend):
    policy = make_policy(quota=100)
    hit(backend, policy, cost=2)
    failed = hit(backend, policy, cost=10)

    result = backend.settle(failed.reservation, units=7, error=True, now=NOW)

    assert (result.given_back, result.error) == (10, True)
    assert backend.quota_used(1, policy) == 2
    assert counts(backend) == (2, 1, 0, 0, 0, 1)


def test_a_settle_after_the_minute_was_rolled_up_changes_nothing(backend):
    policy = make_policy(quota=100)
    decision = hit(backend, policy, cost=10)
    buckets = backend.pending_buckets(before=MINUTE + 60)
    drained = backend.drain(buckets)

    late = backend.settle(decision.reservation, units=1, now=NOW)

    assert (late.settlement, late.given_back) == (Settlement.LATE, 0)
    assert backend.drain(buckets) == drained
    assert backend.quota_used(1, policy) == 10


def test_a_reservation_the_backend_never_admitted_gives_nothing_back(backend):
    policy = make_policy(quota=100)
    real = hit(backend, policy, cost=10)
    forged = Reservation(
        account_id=1,
        key_id=1,
        endpoint="lookup",
        cost=10,
        minute=real.minute,
        token="not-a-token",
        period_key=policy.period_key,
        interval_us=policy.interval_us,
    )

    result = backend.settle(forged, units=0, now=NOW)

    assert result.settlement == Settlement.LATE
    assert backend.quota_used(1, policy) == 10


def test_a_free_call_settled_as_an_error_gives_back_its_request(backend):
    policy = make_policy(quota=100)
    decision = hit(backend, policy, cost=0, endpoint="usage")

    result = backend.settle(decision.reservation, units=0, error=True, now=NOW)

    assert (result.settlement, result.given_back) == (Settlement.SETTLED, 0)
    assert counts(backend) == (0, 0, 0, 0, 0, 1)


def test_32_concurrent_variable_cost_calls_never_pass_the_limit_and_bill_the_actuals(backend):
    """32 threads reserve 10 units at once against a burst of 100 refilling 1 unit a minute
    (nothing refills during the test), settle a random actual, and go again, three rounds: no
    more than 10 reservations ever hold at once, and what is billed is exactly the actuals."""
    policy = make_policy(rate=1, burst=100, quota=1_000)
    barrier = threading.Barrier(32)
    lock = threading.Lock()
    admitted_per_round: list[int] = [0, 0, 0]
    actuals: list[int] = []
    randomness = random.Random(15)
    planned = [[randomness.randint(0, 10) for _ in range(3)] for _ in range(32)]

    def client(index: int) -> None:
        for round_ in range(3):
            barrier.wait()
            decision = hit(backend, policy, cost=10, now=NOW + round_)
            barrier.wait()  # every reservation of the round is held before any is settled
            if decision.outcome != Outcome.ADMITTED:
                continue
            units = planned[index][round_]
            backend.settle(decision.reservation, units=units, now=NOW + round_)
            with lock:
                admitted_per_round[round_] += 1
                actuals.append(units)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Round one: 100 units of burst / 10 reserved = 10 calls, whatever the actuals will be.
    assert admitted_per_round[0] == 10
    assert sum(actuals) <= 100
    assert backend.quota_used(1, policy) == sum(actuals)
    assert counts(backend)[:2] == (sum(actuals), len(actuals))
