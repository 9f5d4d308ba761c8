"""The limiter while a primary is replaced: a Redis Cluster primary killed under API traffic, a
graceful cluster failover, and a Sentinel master killed.

What must hold, and what each test checks:

- a call is either served and counted, or refused: with METERING_FAIL_MODE=closed the API
  answers 503 while the account's primary is missing, never 200 uncounted;
- nothing is counted twice (a call retried across the switch carries its token), and what the
  rollup bills is what was served, minus what the dead primary had acknowledged but not yet
  sent to its replica (Redis replicates asynchronously). Each test prints its figures; the
  loss measured on loopback is 0 (docs/deploy.md);
- the other shards of a cluster keep serving (``cluster-require-full-coverage no``);
- a quota spent before the failover stays spent after it (the counter is replicated);
- calls resume on the promoted replica: redirections (MOVED) are followed, and the scripts are
  loaded again on a node that never ran them.

Each test leaves the topology whole (the killed node restarted as a replica, in sync).
"""

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from redis.cluster import RedisCluster

from metering.limiter import get_limiter, set_limiter
from metering.limiter.redis import RedisLimiter
from metering.limiter.topology import redis_target
from metering.models import UsageRollup
from metering.services import usage_rollup
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory
from tests.metering.redis_topologies import (
    Traffic,
    cluster_whole,
    counted_units,
    kill,
    node,
    primaries,
    primary_of,
    replica_of,
    restart,
    sentinel_for,
    sentinel_whole,
    wait_until,
)
from tests.metering.workers import policy as make_policy
from tests.services import redis_cluster_url, redis_sentinel_url

TIGHT_QUOTA = 150


def limiter_on(settings, url: str, *, timeout_ms: int) -> RedisLimiter:
    settings.METERING_REDIS_URL = url
    settings.METERING_REDIS_TIMEOUT_MS = timeout_ms
    settings.METERING_FAIL_MODE = "closed"
    set_limiter(None)
    limiter = get_limiter()
    assert isinstance(limiter, RedisLimiter)
    limiter.reset()
    return limiter


@pytest.fixture
def cluster(settings):
    url = redis_cluster_url()
    wait_until(lambda: cluster_whole(url), seconds=60, what="the cluster to be whole")
    limiter = limiter_on(settings, url, timeout_ms=500)
    yield url, limiter
    wait_until(lambda: cluster_whole(url), seconds=60, what="the cluster to be whole again")
    limiter.reset()
    set_limiter(None)


@pytest.fixture
def sentinel(settings):
    url = redis_sentinel_url()
    wait_until(lambda: sentinel_whole(url), seconds=60, what="the Sentinel setup to be whole")
    limiter = limiter_on(settings, url, timeout_ms=500)
    yield url, limiter
    wait_until(lambda: sentinel_whole(url), seconds=60, what="the Sentinel setup to be whole")
    limiter.reset()
    set_limiter(None)


class ApiClients:
    """``count`` threads, each a Django test client calling ``/v1/test/lookup`` (1 unit) with
    the keys in turn until stopped; records every status per account."""

    def __init__(self, keys, *, count: int):
        self.keys = keys
        self.statuses: dict[int, Counter[int]] = {key.account_id: Counter() for key in keys}
        self.last_ok: dict[int, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(count)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _run(self, index: int):
        client = Client()
        calls = 0
        try:
            while not self.stop.is_set():
                key = self.keys[(index + calls) % len(self.keys)]
                calls += 1
                response = client.get(
                    "/v1/test/lookup", HTTP_AUTHORIZATION=f"Bearer {key.plaintext}"
                )
                with self.lock:
                    self.statuses[key.account_id][response.status_code] += 1
                    if response.status_code == 200:
                        self.last_ok[key.account_id] = time.monotonic()
                if response.status_code == 503:
                    time.sleep(0.01)  # a refused client does not spin
        finally:
            connection.close()

    def served_since(self, account_id: int, moment: float) -> bool:
        with self.lock:
            return self.last_ok.get(account_id, 0) > moment


def key_on(limiter: RedisLimiter, tier, primary: tuple[str, int]):
    """An API key of a new account on ``tier`` whose keys live on ``primary``."""
    while True:
        key = ApiKeyFactory(account=AccountFactory(tier=tier))
        if primary_of(limiter, key.account_id) == primary:
            return key
        key.account.delete()


def rolled_units(account_id: int) -> int:
    return sum(UsageRollup.objects.filter(account_id=account_id).values_list("units", flat=True))


@pytest.mark.redis_cluster
@pytest.mark.django_db(transaction=True)
def test_a_killed_cluster_primary_refuses_its_accounts_until_its_replica_serves_them(
    cluster, metered_urls
):
    url, limiter = cluster
    roomy = TierFactory(rate_limit_per_minute=1_000_000, burst=1_000_000, included_units=10**6)
    tight = TierFactory(
        rate_limit_per_minute=1_000_000, burst=1_000_000, included_units=TIGHT_QUOTA
    )
    # Two accounts on the primary that will die (one on a quota it spends before the kill),
    # one on each other primary.
    first = ApiKeyFactory(account=AccountFactory(tier=roomy))
    victim = primary_of(limiter, first.account_id)
    victim_keys = [first, key_on(limiter, tight, victim)]
    other_keys = [key_on(limiter, roomy, where) for where in primaries(url) - {victim}]
    quota_account = victim_keys[1].account_id
    keys = victim_keys + other_keys

    with ApiClients(keys, count=8) as clients:
        wait_until(
            lambda: clients.statuses[quota_account][429] > 0,
            seconds=30,
            what="the tight account to spend its quota",
        )
        config_file = kill(*victim)
        killed_at = time.monotonic()
        wait_until(
            lambda: victim not in primaries(url), seconds=30, what="a replica to be promoted"
        )
        promoted_at = time.monotonic()
        wait_until(
            lambda: clients.served_since(victim_keys[0].account_id, promoted_at),
            seconds=15,
            what="the victim's accounts to be served again",
        )
        time.sleep(0.5)
    restart(config_file)
    wait_until(lambda: cluster_whole(url), seconds=60, what="the old primary to rejoin")

    usage_rollup(now=timezone.now() + timedelta(minutes=5))
    figures = {
        key.account_id: (dict(clients.statuses[key.account_id]), rolled_units(key.account_id))
        for key in keys
    }
    switch = promoted_at - killed_at
    print(f"\nkilled {victim}: switch {switch:.1f} s; (statuses, rolled units) {figures}")
    for key in keys:
        statuses, rolled = figures[key.account_id]
        served = statuses.get(200, 0)
        # Refused while its primary was missing, never admitted uncounted; 429 only once the
        # quota was spent.
        assert set(statuses) <= {200, 429, 503}
        # Never counted twice, never billed unserved; what the dead primary had not passed to
        # its replica yet is lost (0 measured on loopback; bounded by the calls in flight).
        assert served - 8 <= rolled <= served
    for key in other_keys:
        assert figures[key.account_id][0].get(503, 0) == 0, "a healthy shard refused calls"
    assert figures[victim_keys[0].account_id][0].get(503, 0) > 0
    # The quota spent before the kill is still spent on the promoted replica.
    assert figures[quota_account][0][200] <= TIGHT_QUOTA


@pytest.mark.redis_cluster
def test_a_graceful_cluster_failover_loses_nothing_and_redirects_every_client(cluster):
    url, limiter = cluster
    policy = make_policy(rate_per_minute=1_000_000, burst=1_000_000, quota=10**9)
    accounts: list[int] = []
    account_id = 5000
    while len({primary_of(limiter, a) for a in accounts}) < 3 or len(accounts) < 6:
        account_id += 1
        accounts.append(account_id)
    victim = primary_of(limiter, accounts[0])
    replica = replica_of(url, victim)

    with Traffic(limiter, accounts, policy, clients=16) as traffic:
        time.sleep(0.5)
        # CLUSTER FAILOVER (no FORCE): the primary stops its clients, the replica catches up,
        # then takes over (https://redis.io/docs/latest/commands/cluster-failover/).
        node(*replica).execute_command("CLUSTER FAILOVER")
        wait_until(lambda: victim not in primaries(url), seconds=30, what="the failover")
        switched = time.monotonic()
        wait_until(
            lambda: traffic.admitted_since(accounts[0], switched),
            seconds=15,
            what="calls admitted on the new primary",
        )
        time.sleep(0.3)

    tally = traffic.tally
    print(f"\nfailover {victim} -> {replica}: unavailable {dict(tally.unavailable)}")
    assert tally.other == []
    # The rollup's batch client has not been used since the failover: its slot map still
    # sends the victim's accounts to the demoted node, which redirects every call (MOVED); the
    # calls follow the redirection.
    batch = limiter.batch_client
    assert isinstance(batch, RedisCluster)
    stale = batch.get_node_from_key(limiter._key(accounts[0], "m"))
    assert (stale.host, stale.port) == victim
    buckets = limiter.pending_buckets(before=int(time.time()) + 3600)
    drained = limiter.drain(buckets)
    assert {b.account_id for b in buckets} == set(accounts)
    by_account: Counter[int] = Counter()
    for bucket, counts in drained.items():
        by_account[bucket.account_id] += sum(count.units for count in counts)
    # Nothing lost, nothing counted twice: a graceful failover waits for the replica.
    assert by_account == Counter({account: tally.admitted[account] for account in accounts})
    limiter.discard(buckets)
    assert limiter.pending_buckets(before=int(time.time()) + 3600) == []


@pytest.mark.redis_sentinel
def test_a_killed_sentinel_master_refuses_calls_until_a_replica_is_promoted(sentinel):
    url, limiter = sentinel
    master_name = redis_target(url).master_name
    watcher = sentinel_for(url)
    old_master = watcher.discover_master(master_name)
    policy = make_policy(rate_per_minute=1_000_000, burst=1_000_000, quota=10**9)
    accounts = list(range(7001, 7009))

    with Traffic(limiter, accounts, policy, clients=16) as traffic:
        time.sleep(0.5)
        config_file = kill(*old_master)
        killed_at = time.monotonic()
        wait_until(
            lambda: watcher.discover_master(master_name) != old_master,
            seconds=30,
            what="Sentinel to promote a replica",
        )
        promoted_at = time.monotonic()
        wait_until(
            lambda: traffic.admitted_since(accounts[0], promoted_at),
            seconds=15,
            what="calls admitted on the new master",
        )
        time.sleep(0.3)
    restart(config_file)  # comes back as a master; Sentinel turns it into a replica

    tally = traffic.tally
    admitted = sum(tally.admitted.values())
    counted = sum(counted_units(limiter, account) for account in accounts)
    print(
        f"\nkilled {old_master}: switch {promoted_at - killed_at:.1f} s; admitted {admitted}, "
        f"counted {counted}, unavailable {sum(tally.unavailable.values())}"
    )
    assert tally.other == []
    assert sum(tally.unavailable.values()) > 0
    # Never counted twice, never billed unserved: a call the master ran and passed to the
    # replica but never answered was refused, and its void is sent once the replica is promoted
    # (a CI run before the voids waited counted 7,590 of 7,589 admitted). The loss is what the
    # master had not sent to the promoted replica.
    assert admitted - 16 <= counted <= admitted
