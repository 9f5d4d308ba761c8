"""The hot path on an event loop, as the gateway's proxy calls it: ``admit_async`` reserves the
endpoint's maximum in one limiter call, ``settle_async`` keeps the actual units and gives the
rest back in at most one more, once, and returns the rate-limit headers of what was settled.

Run through ``async_to_sync`` as Django runs an async view under a sync caller, so the quota
seed's query runs on the test's database connection. The process limiter is the in-process one
in the embedded pass and Redis (redis.asyncio) in the second pass; the round-trip and
script-cache cases run a redis-server of their own, the cluster case needs REDIS_CLUSTER_URL.
"""

import asyncio
import time
import uuid

import pytest
from asgiref.sync import async_to_sync

from metering.hotpath import admit_async, policy_for, settle_async
from metering.limiter import get_limiter, set_limiter
from metering.limiter.base import LimiterUnavailable, Outcome, Policy
from metering.limiter.redis import RedisLimiter
from metering.models import UsageRollup
from portal.keys.cache import key_cache
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory
from tests.metering.redis_process import redis_process
from tests.metering.test_limiter_round_trips import commands as all_commands
from tests.metering.test_throttle_fail_modes import Blackhole
from tests.metering.workers import policy as policy_around_now
from tests.services import redis_cluster_url, redis_sentinel_url

pytestmark = pytest.mark.django_db


def principal_of(**tier_fields):
    key = ApiKeyFactory(account=AccountFactory(tier=TierFactory(**tier_fields)))
    return key_cache.resolve(key.plaintext)


@async_to_sync
async def call(principal, *, cost: int, status: int = 200, units: int | None):
    decision = await admit_async(principal=principal, endpoint="generate", cost=cost)
    headers = await settle_async(decision, status=status, units=units)
    return decision, headers


def test_a_variable_cost_call_is_billed_its_actual_units_and_the_headers_say_so():
    principal = principal_of(rate_limit_per_minute=60, burst=20, included_units=1000)

    decision, headers = call(principal, cost=10, units=3)

    assert decision.outcome == Outcome.ADMITTED
    assert decision.units == 3
    assert get_limiter().quota_used(principal.account_id, policy_for(principal)) == 3
    # 20 of burst, 3 spent: the 7 given back show at once; the minute binds (fewer left).
    assert headers["RateLimit"].startswith('"minute";r=17;t=3, "period";r=997;')
    assert headers["X-RateLimit-Remaining"] == "17"
    assert headers["RateLimit-Policy"].startswith('"minute";q=20;w=20, "period";q=1000;')


def test_settling_again_answers_the_same_headers_and_calls_no_limiter(monkeypatch):
    principal = principal_of(rate_limit_per_minute=600, included_units=1000)
    decision, first = call(principal, cost=10, units=4)
    calls = []
    monkeypatch.setattr(get_limiter(), "settle_async", lambda *a, **k: calls.append(a))

    again = async_to_sync(settle_async)(decision, status=200, units=0)

    assert again == first
    assert calls == []
    assert get_limiter().quota_used(principal.account_id, policy_for(principal)) == 4


def test_a_call_that_used_its_whole_reservation_makes_no_second_limiter_call(monkeypatch):
    principal = principal_of(rate_limit_per_minute=600, included_units=1000)
    limiter = get_limiter()
    settles = []
    original = limiter.settle_async

    async def counted(*args, **kwargs):
        settles.append(args)
        return await original(*args, **kwargs)

    monkeypatch.setattr(limiter, "settle_async", counted)

    call(principal, cost=5, units=None)
    call(principal, cost=5, units=5)
    call(principal, cost=5, units=2)

    assert len(settles) == 1
    assert limiter.quota_used(principal.account_id, policy_for(principal)) == 12


def test_a_status_not_billed_gives_everything_back_and_counts_an_error():
    principal = principal_of(rate_limit_per_minute=600, included_units=1000)

    decision, headers = call(principal, cost=8, status=502, units=3)

    assert decision.units == 0
    assert get_limiter().quota_used(principal.account_id, policy_for(principal)) == 0
    [counts] = get_limiter().live_usage(principal.account_id).values()
    assert [(c.units, c.requests, c.errors) for c in counts] == [(0, 0, 1)]
    assert '"period";r=1000;' in headers["RateLimit"]


def test_a_refused_call_gets_its_headers_from_the_settle():
    principal = principal_of(rate_limit_per_minute=600, included_units=5)
    call(principal, cost=5, units=None)

    refused, headers = call(principal, cost=1, status=429, units=None)

    assert refused.outcome == Outcome.QUOTA_EXCEEDED
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["RateLimit"].startswith('"period";r=0;')


def test_the_first_call_of_a_period_seeds_the_quota_from_the_rolled_up_usage():
    principal = principal_of(rate_limit_per_minute=600, included_units=100)
    UsageRollup.objects.create(
        account_id=principal.account_id,
        api_key_id=principal.key_id,
        endpoint="generate",
        minute=principal.period_start.replace(second=0, microsecond=0)
        + (principal.period_end - principal.period_start) / 1000,
        units=95,
        requests=95,
    )

    kept, _ = call(principal, cost=5, units=None)
    refused, _ = call(principal, cost=1, status=429, units=None)

    assert kept.quota_used == 100
    assert refused.outcome == Outcome.QUOTA_EXCEEDED


def test_32_concurrent_calls_on_one_loop_never_pass_the_burst_and_bill_the_actuals():
    principal = principal_of(rate_limit_per_minute=1, burst=100, included_units=10_000)
    actuals = [index % 11 for index in range(32)]

    @async_to_sync
    async def run():
        decisions = await asyncio.gather(
            *(admit_async(principal=principal, endpoint="generate", cost=10) for _ in range(32))
        )
        admitted = [d for d in decisions if d.counted]
        await asyncio.gather(
            *(settle_async(d, status=200, units=actuals[i]) for i, d in enumerate(admitted))
        )
        return admitted

    admitted = run()

    # Every reservation is held before any is settled: 100 units of burst / 10 = 10 calls.
    assert len(admitted) == 10
    billed = sum(actuals[:10])
    assert get_limiter().quota_used(principal.account_id, policy_for(principal)) == billed
    [counts] = get_limiter().live_usage(principal.account_id).values()
    assert [(c.units, c.requests, c.refused_rate) for c in counts] == [(billed, 10, 22)]


@pytest.fixture
def unreachable(settings):
    settings.METERING_REDIS_URL = "redis://127.0.0.1:9/0"  # the discard port: refused at once
    settings.METERING_REDIS_TIMEOUT_MS = 200
    set_limiter(None)
    yield
    set_limiter(None)


def test_an_unreachable_redis_fails_closed(unreachable, settings):
    settings.METERING_FAIL_MODE = "closed"
    principal = principal_of(rate_limit_per_minute=600, included_units=1000)

    with pytest.raises(LimiterUnavailable):
        call(principal, cost=1, units=None)


def test_an_unreachable_redis_fails_open_unmetered_with_the_policy_headers(unreachable, settings):
    settings.METERING_FAIL_MODE = "open"
    principal = principal_of(rate_limit_per_minute=600, included_units=1000)

    decision, headers = call(principal, cost=1, units=None)

    assert decision.outcome == Outcome.UNMETERED
    assert set(headers) == {"RateLimit-Policy", "X-RateLimit-Limit"}


def test_a_redis_that_never_answers_is_given_up_on_within_the_timeouts(settings):
    """Accepted, never answered: each attempt (the call, its resend, the void) waits one
    timeout, and the connection that timed out is dropped, not reused."""
    hole = Blackhole()
    settings.METERING_REDIS_URL = f"redis://127.0.0.1:{hole.port}/0"
    settings.METERING_REDIS_TIMEOUT_MS = 100
    settings.METERING_FAIL_MODE = "closed"
    set_limiter(None)
    principal = principal_of(rate_limit_per_minute=600, included_units=1000)
    try:
        started = time.monotonic()
        with pytest.raises(LimiterUnavailable):
            call(principal, cost=1, units=None)
        elapsed = time.monotonic() - started
    finally:
        hole.close()
        set_limiter(None)

    assert 0.3 <= elapsed < 5


# --- Redis: round trips and the script cache, on a server of the test's own ---------------------


def policy() -> Policy:
    return policy_around_now(rate_per_minute=600, burst=600, quota=10**6)


def commands(client) -> dict[str, int]:
    """The calls the limiter sent, without a new connection's handshake (each event loop has a
    client of its own, and async_to_sync runs each call on a new loop)."""
    return {
        name: calls
        for name, calls in all_commands(client).items()
        if name not in {"hello", "select"} and not name.startswith("client|")
    }


@pytest.fixture
def private_redis(tmp_path):
    with redis_process(tmp_path) as process:
        limiter = RedisLimiter(process.url, timeout_ms=2000, prefix="mdasync")
        yield process, limiter
        limiter.close()


@pytest.mark.redis
def test_an_admit_and_a_partial_settle_are_two_evalsha_and_nothing_else(private_redis):
    server, limiter = private_redis
    terms = policy()

    @async_to_sync
    async def run():
        warm = await limiter.hit_async(
            account_id=1, key_id=1, endpoint="generate", cost=1, policy=terms, seed=0
        )
        await limiter.settle_async(warm.reservation, units=1)  # both scripts loaded
        server.client().config_resetstat()
        decision = await limiter.hit_async(
            account_id=1, key_id=1, endpoint="generate", cost=10, policy=terms
        )
        return await limiter.settle_async(decision.reservation, units=4)

    result = run()

    assert result.given_back == 6
    assert commands(server.client()) == {"evalsha": 2}
    assert limiter.quota_used(1, terms) == 5


@pytest.mark.redis
def test_a_lost_script_cache_is_loaded_again_and_the_call_counted_once(private_redis):
    server, limiter = private_redis
    terms = policy()
    hit = async_to_sync(limiter.hit_async)
    hit(account_id=1, key_id=1, endpoint="generate", cost=1, policy=terms, seed=0)
    server.client().script_flush()
    server.client().config_resetstat()

    decision = hit(account_id=1, key_id=1, endpoint="generate", cost=1, policy=terms)

    assert decision.quota_used == 2
    assert commands(server.client()) == {"evalsha": 2, "script|load": 1}


@pytest.mark.redis
def test_a_call_that_timed_out_is_voided_not_counted(private_redis, monkeypatch):
    """The reply never comes (here: the first attempt's connection is cut before the reply is
    read): the call is sent again with its token, then voided, as on the sync path."""
    _, limiter = private_redis
    terms = policy()
    async_to_sync(limiter.hit_async)(
        account_id=1, key_id=1, endpoint="generate", cost=1, policy=terms, seed=0
    )
    import redis.exceptions

    from metering.limiter import redis as redis_backend

    original = redis_backend._run_script_async
    attempts = []

    async def lossy(connection, name, keys, args):
        reply = await original(connection, name, keys, args)
        if name == "hit":
            attempts.append(args[-1])
            raise redis.exceptions.TimeoutError("reply lost")
        return reply

    monkeypatch.setattr(redis_backend, "_run_script_async", lossy)

    with pytest.raises(LimiterUnavailable):
        async_to_sync(limiter.hit_async)(
            account_id=1, key_id=1, endpoint="generate", cost=5, policy=terms
        )

    assert len(attempts) == 2 and attempts[0] == attempts[1]  # the same token, sent twice
    assert limiter.quota_used(1, terms) == 1  # counted once by the script, then voided


def settle_six_accounts(url: str) -> list[tuple[Outcome, int, int | None]]:
    """Six accounts (spread over a cluster's slots) admitted at 10 units and settled at 1..6,
    through the asyncio client: (outcome, units given back, units counted) of each; None:
    no quota counter."""
    limiter = RedisLimiter(url, timeout_ms=2000, prefix=f"mdasync-{uuid.uuid4().hex[:6]}")
    terms = policy()

    @async_to_sync
    async def run():
        results = []
        for account in range(1, 7):
            decision = await limiter.hit_async(
                account_id=account, key_id=1, endpoint="generate", cost=10, policy=terms, seed=0
            )
            settled = await limiter.settle_async(decision.reservation, units=account)
            results.append((decision.outcome, settled.given_back))
        await limiter.close_async()
        return results

    try:
        return [
            (outcome, given_back, limiter.quota_used(account, terms))
            for account, (outcome, given_back) in enumerate(run(), start=1)
        ]
    finally:
        limiter.reset()
        limiter.close()


@pytest.mark.redis_cluster
def test_on_a_cluster_each_account_is_admitted_and_settled_on_its_slot():
    assert settle_six_accounts(redis_cluster_url()) == [
        (Outcome.ADMITTED, 10 - account, account) for account in range(1, 7)
    ]


@pytest.mark.redis_sentinel
def test_through_sentinel_the_primary_admits_and_settles():
    assert settle_six_accounts(redis_sentinel_url()) == [
        (Outcome.ADMITTED, 10 - account, account) for account in range(1, 7)
    ]
