"""The limiter on Redis Cluster (and the URLs that name the three topologies).

The URL cases are pure parsing and run in every pass. The rest needs the cluster that
``.ci/redis-topologies.sh start`` runs (``REDIS_CLUSTER_URL``): three primaries, one replica
each. Every account's keys share one hash tag, so each script touches one slot; these tests
check what that promises: exact limits under 32 concurrent clients, one round trip per call,
scripts that survive an empty script cache, and a rollup that drains every primary.
"""

import time
from datetime import timedelta

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from redis.connection import AbstractConnection

from metering.limiter import get_limiter, set_limiter
from metering.limiter.base import Outcome
from metering.limiter.checks import MALFORMED_URL_ID, limiter_url_check
from metering.limiter.redis import RedisLimiter
from metering.limiter.topology import Topology, redis_target
from metering.models import UsageRollup
from metering.services import usage_rollup
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory
from tests.metering.limiters import admitted_at_once
from tests.metering.redis_topologies import counted_units, node, primaries, primary_of
from tests.metering.workers import policy as make_policy
from tests.services import redis_cluster_url

CLIENTS = 32

# --- URLs (no server) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, nodes, extra",
    [
        (
            "redis-cluster://127.0.0.1:7000,127.0.0.1:7001",
            (("127.0.0.1", 7000), ("127.0.0.1", 7001)),
            {},
        ),
        # No port: Redis's own default; credentials are the data nodes'; TLS by the scheme.
        (
            "rediss-cluster://app:s%40cret@redis-a,[::1]:7002",
            (("redis-a", 6379), ("::1", 7002)),
            {"username": "app", "password": "s@cret", "ssl": True},
        ),
    ],
)
def test_a_cluster_url_names_its_start_nodes(url, nodes, extra):
    target = redis_target(url)

    assert target.topology == Topology.CLUSTER
    assert target.nodes == nodes
    assert {name: getattr(target, name) for name in extra} == extra


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database():
    target = redis_target(
        "redis-sentinel://:pw@10.0.0.1:26380,10.0.0.2/mdk?db=3&sentinel_password=spw"
    )

    assert target.topology == Topology.SENTINEL
    assert target.nodes == (("10.0.0.1", 26380), ("10.0.0.2", 26379))
    assert (target.master_name, target.db) == ("mdk", 3)
    assert (target.password, target.sentinel_password) == ("pw", "spw")
    assert redis_target("redis-sentinel://h:1/mdk").db == 0


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h:6380/2", "unix:///run/redis.sock?db=1"]
)
def test_one_server_urls_are_read_by_redis_py_as_before(url):
    assert redis_target(url).topology == Topology.SERVER


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://127.0.0.1:7000", "the scheme must be"),
        ("127.0.0.1:6379", "the scheme must be"),
        ("redis-cluster://", "no host:port"),
        ("redis-cluster://h:7000,,h:7001", "an empty host"),
        ("redis-cluster://h:70000", "the port must be a number from 1 to 65535"),
        ("redis-cluster://h:port", "the port must be a number"),
        ("redis-cluster://h:7000/1", "a cluster has only database 0"),
        ("redis-cluster://h:7000?db=1", "unknown option(s) db for a cluster"),
        ("redis-sentinel://h:26379", "name the master after the hosts"),
        ("redis-sentinel://h:26379/mdk/3", "?db=N"),
        ("redis-sentinel://h:26379/mdk?db=x", "db='x' is not a database number"),
        ("redis-sentinel://h:26379/mdk?timeout=1", "unknown option(s) timeout for Sentinel"),
        ("redis-sentinel://h:26379/mdk?db=1&db=2", "the option db is given 2 times"),
        ("redis://h:6379,h2:6379/0", "METERING_REDIS_URL"),
    ],
)
def test_a_malformed_url_is_refused_saying_what_is_wrong(url, says):
    with pytest.raises(ImproperlyConfigured) as refused:
        redis_target(url)

    assert says in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis-cluster://app:hunter2@h:99999",
        "redis-sentinel://h:1/mdk?sentinel_password=hunter2&x=1",
    ],
)
def test_no_password_is_repeated_in_the_error(url):
    with pytest.raises(ImproperlyConfigured) as refused:
        redis_target(url)

    assert "hunter2" not in str(refused.value)


def test_manage_py_check_reports_a_malformed_url_before_any_request(settings):
    settings.METERING_REDIS_URL = "redis-sentinel://h:26379"

    errors = list(limiter_url_check())

    assert [error.id for error in errors] == [MALFORMED_URL_ID]
    settings.METERING_REDIS_URL = "redis-cluster://h:7000"
    assert list(limiter_url_check()) == []


def test_the_process_limiter_is_not_built_from_a_malformed_url(settings):
    settings.METERING_REDIS_URL = "redis-cluster://h:7000/0"
    set_limiter(None)
    try:
        with pytest.raises(ImproperlyConfigured, match="only database 0"):
            get_limiter()
    finally:
        set_limiter(None)


def test_a_cluster_down_when_the_process_starts_is_a_limiter_unavailable_not_a_crash():
    # Nothing listens on port 1: the cluster client cannot learn the slots. The limiter is
    # built anyway and answers every call with LimiterUnavailable (the API's 503) until the
    # cluster is up; then it connects on the next call.
    limiter = RedisLimiter("redis-cluster://127.0.0.1:1", timeout_ms=50)
    policy = make_policy(rate_per_minute=60, burst=60, quota=100)

    with pytest.raises(Exception) as raised:
        limiter.hit(account_id=1, key_id=1, endpoint="x", cost=1, policy=policy, seed=0)

    assert type(raised.value).__name__ == "LimiterUnavailable"


# --- On a real cluster --------------------------------------------------------------------------


@pytest.fixture
def cluster_limiter(settings):
    """The process's limiter on the cluster, emptied around the test (this run's prefix)."""
    settings.METERING_REDIS_URL = redis_cluster_url()
    settings.METERING_REDIS_TIMEOUT_MS = 2000
    set_limiter(None)
    limiter = get_limiter()
    assert isinstance(limiter, RedisLimiter)
    limiter.reset()
    yield limiter
    limiter.reset()
    set_limiter(None)


def accounts_on_every_primary(limiter: RedisLimiter, *, each: int = 1) -> dict[tuple, list[int]]:
    """Account ids (no database rows) grouped by the primary their slot is on."""
    found: dict[tuple, list[int]] = {primary: [] for primary in primaries(redis_cluster_url())}
    account_id = 1000
    while any(len(ids) < each for ids in found.values()):
        account_id += 1
        ids = found[primary_of(limiter, account_id)]
        if len(ids) < each:
            ids.append(account_id)
    return found


@pytest.mark.redis_cluster
@pytest.mark.parametrize(
    "fields, allowed",
    [
        # The rate limit decides: a burst of 100 that refills one unit a minute.
        ({"rate_per_minute": 1, "burst": 100, "quota": 1_000_000}, 100),
        # The quota decides.
        ({"rate_per_minute": 1_000_000, "burst": 1_000_000, "quota": 100}, 100),
    ],
    ids=["rate", "quota"],
)
def test_32_clients_on_each_primary_are_admitted_exactly_what_is_allowed(
    cluster_limiter, fields, allowed
):
    policy = make_policy(**fields)
    accounts = [ids[0] for ids in accounts_on_every_primary(cluster_limiter).values()]
    calls = 3 * allowed * len(accounts) // CLIENTS + 1

    admitted = admitted_at_once(cluster_limiter, policy, accounts, clients=CLIENTS, calls=calls)

    assert admitted == {account: allowed for account in accounts}
    for account in accounts:
        assert cluster_limiter.quota_used(account, policy) == allowed
        usage = [c for counts in cluster_limiter.live_usage(account).values() for c in counts]
        assert sum(c.units for c in usage) == sum(c.requests for c in usage) == allowed


@pytest.mark.redis_cluster
def test_an_admitted_call_is_one_round_trip_to_one_primary(cluster_limiter, monkeypatch):
    policy = make_policy(rate_per_minute=10_000, burst=10_000, quota=1_000_000)
    accounts = [ids[0] for ids in accounts_on_every_primary(cluster_limiter).values()]

    def call(account: int):
        return cluster_limiter.hit(
            account_id=account, key_id=1, endpoint="lookup", cost=1, policy=policy, seed=0
        )

    for account in accounts:  # connections opened, scripts loaded: the steady state
        call(account)
    sent: list[str] = []
    replies = []
    original_send = AbstractConnection.send_packed_command
    original_read = AbstractConnection.read_response

    def send(connection, command, *args, **kwargs):
        sent.append(f"{connection.host}:{connection.port}")
        return original_send(connection, command, *args, **kwargs)

    def read(connection, *args, **kwargs):
        replies.append(1)
        return original_read(connection, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send)
    monkeypatch.setattr(AbstractConnection, "read_response", read)

    decisions = [call(account) for account in accounts for _ in range(20)]

    assert {d.outcome for d in decisions} == {Outcome.ADMITTED}
    assert len(sent) == len(replies) == len(decisions)
    # Each call went straight to its account's primary: no redirection, no topology refresh.
    expected = [
        "{}:{}".format(*primary_of(cluster_limiter, account))
        for account in accounts
        for _ in range(20)
    ]
    assert sent == expected


@pytest.mark.redis_cluster
def test_a_primary_with_an_empty_script_cache_gets_the_scripts_again(cluster_limiter):
    # A restarted node or a promoted replica has no scripts: EVALSHA answers NOSCRIPT.
    policy = make_policy(rate_per_minute=10_000, burst=10_000, quota=1_000_000)
    accounts = [ids[0] for ids in accounts_on_every_primary(cluster_limiter).values()]
    for account in accounts:
        cluster_limiter.hit(account_id=account, key_id=1, endpoint="x", cost=1, policy=policy)
    for host, port in primaries(redis_cluster_url()):
        node(host, port).script_flush()

    decisions = [
        cluster_limiter.hit(
            account_id=account, key_id=1, endpoint="x", cost=2, policy=policy, seed=0
        )
        for account in accounts
    ]

    assert {d.outcome for d in decisions} == {Outcome.ADMITTED}
    # Counted once each, after the reload.
    assert [cluster_limiter.quota_used(a, policy) for a in accounts] == [2] * len(accounts)


@pytest.mark.redis_cluster
@pytest.mark.django_db
def test_the_rollup_drains_the_accounts_of_every_primary(cluster_limiter):
    tier = TierFactory(rate_limit_per_minute=10_000, included_units=10_000)
    by_primary: dict[tuple, list] = {primary: [] for primary in primaries(redis_cluster_url())}
    while any(len(keys) < 2 for keys in by_primary.values()):
        key = ApiKeyFactory(account=AccountFactory(tier=tier))
        by_primary[primary_of(cluster_limiter, key.account_id)].append(key)
    keys = [key for keys in by_primary.values() for key in keys]
    policy = make_policy(rate_per_minute=10_000, burst=10_000, quota=1_000_000)
    for index, key in enumerate(keys, start=1):
        for _ in range(index):
            cluster_limiter.hit(
                account_id=key.account_id,
                key_id=key.pk,
                endpoint="lookup",
                cost=3,
                policy=policy,
                seed=0,
            )
    # Read back through one MULTI/EXEC per account (a cluster transaction on its slot).
    live = {key.account_id: counted_units(cluster_limiter, key.account_id) for key in keys}
    assert live == {key.account_id: 3 * index for index, key in enumerate(keys, start=1)}

    result = usage_rollup(now=timezone.now() + timedelta(minutes=5))

    rolled = {
        key.account_id: sum(
            UsageRollup.objects.filter(account_id=key.account_id).values_list("units", flat=True)
        )
        for key in keys
    }
    assert rolled == live
    assert result.applied == len(keys)
    assert cluster_limiter.pending_buckets(before=int(time.time()) + 3600) == []
    assert all(not cluster_limiter.live_usage(key.account_id) for key in keys)


@pytest.mark.redis_cluster
def test_reset_empties_every_primary(cluster_limiter):
    policy = make_policy(rate_per_minute=10_000, burst=10_000, quota=1_000_000)
    for ids in accounts_on_every_primary(cluster_limiter, each=3).values():
        for account in ids:
            cluster_limiter.hit(account_id=account, key_id=1, endpoint="x", cost=1, policy=policy)
            cluster_limiter.publish_version(account, 3, ttl=60)

    cluster_limiter.reset()

    pattern = f"{cluster_limiter.prefix}:*"
    left = {
        f"{host}:{port}": list(node(host, port).scan_iter(match=pattern))
        for host, port in primaries(redis_cluster_url())
    }
    assert left == {name: [] for name in left}


def test_redis_py_still_raises_connection_errors_as_redis_errors():
    # tests/limiter.py skips a reset on RedisError when Redis is down; the cluster client's
    # "cannot connect" (a RedisClusterException) is turned into one.
    limiter = RedisLimiter("redis-cluster://127.0.0.1:1", timeout_ms=50)

    with pytest.raises(redis.RedisError):
        limiter.reset()
