"""One Redis round trip per call, on the limiter's own path to one server (issue 14).

``metering.limiter.redis._run_script`` sends EVALSHA on a connection of redis-py's pool itself,
instead of through ``Script.__call__``; these tests pin what that path must still do: one
command per call whatever the outcome, the script loaded again (and the call counted once)
when the server lost its script cache, and a changed policy taking effect on the next call
although the call's key names are kept per key. Each test runs a redis-server of its own
(tests/metering/redis_process.py), so INFO commandstats counts only this test's commands.
"""

import pytest
import redis

from metering.limiter.base import Outcome
from metering.limiter.redis import RedisLimiter
from tests.metering.redis_process import RedisProcess, redis_process
from tests.metering.workers import policy as make_policy

pytestmark = pytest.mark.redis

CALLS = 50


@pytest.fixture
def server(tmp_path):
    with redis_process(tmp_path) as process:
        yield process


@pytest.fixture
def limiter(server: RedisProcess):
    made = RedisLimiter(server.url, timeout_ms=2000, prefix="mdtrips")
    yield made
    made.close()


# What hit.lua runs inside Redis: INFO commandstats counts these too, though no client sent them.
SCRIPT_COMMANDS = {
    *("time", "get", "hget", "hmget", "set", "incrby", "decrby", "hincrby", "sadd", "hset"),
    *("expire", "exists", "del"),
}


def commands(client: redis.Redis) -> dict[str, int]:
    """Calls per command a client sent since the last CONFIG RESETSTAT, the counting's own and
    those the script ran left out."""
    stats = {
        name.removeprefix("cmdstat_"): int(fields["calls"])
        for name, fields in client.info("commandstats").items()
    }
    for own in ("info", "config|resetstat", *SCRIPT_COMMANDS):
        stats.pop(own, None)
    return stats


def hit(limiter: RedisLimiter, policy, **extra):
    return limiter.hit(account_id=1, key_id=1, endpoint="lookup", cost=1, policy=policy, **extra)


def test_every_call_is_one_evalsha_whatever_the_outcome(server, limiter):
    policy = make_policy(rate_per_minute=60, burst=CALLS // 2, quota=10**6)
    hit(limiter, policy, seed=0)  # the quota counter seeded, the script loaded
    client = server.client()
    client.config_resetstat()

    outcomes = [hit(limiter, policy).outcome for _ in range(CALLS)]

    assert outcomes.count(Outcome.ADMITTED) == CALLS // 2 - 1
    assert outcomes.count(Outcome.RATE_LIMITED) == CALLS // 2 + 1
    assert commands(client) == {"evalsha": CALLS}


def test_a_lost_script_cache_is_loaded_again_and_the_call_counted_once(server, limiter):
    policy = make_policy(rate_per_minute=600, burst=600, quota=10**6)
    hit(limiter, policy, seed=0)
    client = server.client()
    client.script_flush()  # what a restarted server or a promoted replica starts with
    client.config_resetstat()

    decision = hit(limiter, policy)

    assert decision.outcome == Outcome.ADMITTED
    assert decision.quota_used == 2
    assert commands(client) == {"evalsha": 2, "script|load": 1}
    assert limiter.quota_used(1, policy) == 2


def test_a_new_policy_takes_effect_on_the_next_call(limiter):
    # The same key under a policy read afresh (a new tier after the key cache's next read):
    # its limits, not the ones the kept key names were made with, decide.
    roomy = make_policy(rate_per_minute=600, burst=600, quota=10**6)
    assert hit(limiter, roomy, seed=0).outcome == Outcome.ADMITTED
    tight = make_policy(rate_per_minute=600, burst=600, quota=1)

    refused = hit(limiter, tight)

    assert refused.outcome == Outcome.QUOTA_EXCEEDED
    assert refused.policy is tight
