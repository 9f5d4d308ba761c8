"""A quota counter Redis lost is seeded again from the period's rollups plus the usage Redis still
holds, each minute once, and never from the rollups alone: a free tier that spent its 500 units
is not given them again.

Redis can lose the counter and keep the usage hashes (an eviction takes the counter first: it is
the key with a TTL), or lose both (a restart without persistence). The seed rule is in
``metering.selectors`` (``quota_seed_units``): the counters are read first, then the rollups
and, in the same SQL statement, which of the counters' minutes they already hold.

Each test runs a redis-server of its own (tests/metering/redis_process.py).
"""

import re
import time
from contextlib import ExitStack

import pytest

from metering.limiter import get_limiter, set_limiter
from metering.limiter.base import LimiterUnavailable
from metering.services import usage_rollup
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory
from tests.metering.redis_process import RedisProcess, limiter_on, redis_process
from tests.metering.spending import spend

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

FREE_UNITS = 500
LOOKUP = "/v1/test/lookup"


@pytest.fixture
def start_redis(tmp_path, settings):
    """A redis-server of this test's own with ``options``, the limiter pointed at it."""
    with ExitStack() as stack:

        def start(*options: str) -> RedisProcess:
            server = stack.enter_context(redis_process(tmp_path, *options))
            limiter_on(settings, server)
            return server

        yield start


@pytest.fixture
def free_key(db):
    """A free tier's key: 500 included units, refused past them; a rate limit that never
    refuses here (the quota is what these tests are about)."""
    tier = TierFactory(included_units=FREE_UNITS, rate_limit_per_minute=100_000)
    return ApiKeyFactory(account=AccountFactory(tier=tier))


def _period_remaining(response) -> int:
    """Units left this period, as the RateLimit header tells the developer."""
    found = re.search(r'"period";r=(\d+)', response["RateLimit"])
    assert found is not None, response["RateLimit"]
    return int(found.group(1))


def _lose_quota_counter(server: RedisProcess, account_id: int) -> None:
    """What an eviction does: the quota counter (it has a TTL) goes, the usage hashes stay."""
    client = server.client()
    (counter,) = client.keys(f"*{{acct:{account_id}}}:q:*")
    client.delete(counter)
    client.close()


def _spend_past_and_live(key) -> None:
    """200 units ten minutes ago (rollable), 150 now (live); nothing rolled up yet."""
    spend(key, cost=200, at=(time.time() // 60 - 10) * 60)
    spend(key, cost=150)


def test_a_lost_counter_is_seeded_from_rollups_plus_the_usage_redis_kept(
    start_redis, free_key, call
):
    server = start_redis()
    _spend_past_and_live(free_key)
    usage_rollup()  # the older minute is now a rollup; the live one stays in Redis
    _lose_quota_counter(server, free_key.account_id)

    response = call(free_key, LOOKUP)

    assert response.status_code == 200
    # 200 rolled up + 150 still in Redis + this call's 1
    assert _period_remaining(response) == FREE_UNITS - 351


def test_no_seed_from_the_rollups_alone_when_redis_usage_cannot_be_read(
    start_redis, free_key, call, monkeypatch
):
    server = start_redis()
    _spend_past_and_live(free_key)
    usage_rollup()
    _lose_quota_counter(server, free_key.account_id)
    limiter = get_limiter()

    def unreadable(account_id):
        raise LimiterUnavailable("TimeoutError: the batch read timed out")

    with monkeypatch.context() as patched:
        patched.setattr(limiter, "live_usage", unreadable)
        refused = call(free_key, LOOKUP)

    # Fail closed for this call, rather than a counter seeded at 200 that would hand out the
    # 150 unrolled units again for the rest of the period.
    assert refused.status_code == 503
    assert server.client().keys(f"*{{acct:{free_key.account_id}}}:q:*") == []
    assert _period_remaining(call(free_key, LOOKUP)) == FREE_UNITS - 351


def test_a_rollup_between_the_two_reads_is_counted_once(start_redis, free_key, call, monkeypatch):
    server = start_redis()
    _spend_past_and_live(free_key)
    _lose_quota_counter(server, free_key.account_id)
    limiter = get_limiter()
    read_live = limiter.live_usage

    def live_then_rollup(account_id):
        live = read_live(account_id)  # both minutes, the older one still in Redis
        usage_rollup()  # which the job commits right now, before the rollups are read
        return live

    monkeypatch.setattr(limiter, "live_usage", live_then_rollup)

    response = call(free_key, LOOKUP)

    assert _period_remaining(response) == FREE_UNITS - 351


@pytest.mark.parametrize(
    ("options", "after_restart"),
    [
        (("--appendonly", "yes", "--appendfsync", "everysec"), 429),
        # What `check --deploy` warns about (metering.W002): the restart starts empty and the
        # rollups hold none of this period's usage yet, so the counter starts from zero.
        ((), 200),
    ],
    ids=["AOF everysec: still refused", "no persistence: granted again"],
)
def test_a_free_tier_that_spent_its_units_after_a_redis_restart(
    start_redis, free_key, call, options, after_restart
):
    server = start_redis(*options)
    spend(free_key, cost=100, times=FREE_UNITS // 100)
    assert call(free_key, LOOKUP).status_code == 429

    server.kill()
    server.start()
    set_limiter(None)  # a web process's pool reconnects after one failed call; skip that call

    assert call(free_key, LOOKUP).status_code == after_restart
