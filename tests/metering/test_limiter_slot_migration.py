"""The limiter while Redis Cluster moves an account's slot to another primary under traffic (a
reshard, as `redis-cli --cluster reshard` does it, step by step).

While a slot migrates, its source answers a command on a key it no longer holds with ``ASK``
(run it once on the target, after ``ASKING``), and a multi-key command whose keys are split
between the two with ``TRYAGAIN``; neither ran the command (https://redis.io/docs/latest/
operate/oss_and_stack/reference/cluster-spec/#ask-redirection and #multi-key-operations).
The limiter's one script touches several keys of the account's slot, so it meets both, and the
target may not have loaded the script yet (``NOSCRIPT``). What must hold: no call fails for
any of this (they are redirections, not Redis being down), nothing is counted twice or lost,
and the account's calls are served by the target once the slot is its own.
"""

import time

import pytest
from redis.cluster import RedisCluster

from tests.metering.redis_topologies import Traffic, node, primaries, primary_of
from tests.metering.test_limiter_failover import cluster  # noqa: F401 - the fixture
from tests.metering.workers import policy as make_policy


def node_id(server) -> str:
    return server.execute_command("CLUSTER MYID")


def stat(server, section: str, name: str) -> int:
    """A count from INFO commandstats/errorstats, 0 before the first."""
    return int(
        server.info(section).get(name, {}).get("calls" if section == "commandstats" else "count", 0)
    )


def migrate_slot(slot: int, source: tuple[str, int], target: tuple[str, int], every: list):
    """Move ``slot`` from ``source`` to ``target`` one key at a time, pausing between keys so
    the traffic meets the half-moved state (the steps of the cluster tutorial's manual
    resharding: https://redis.io/docs/latest/commands/cluster-setslot/)."""
    src, dst = node(*source), node(*target)
    src_id, dst_id = node_id(src), node_id(dst)
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
    moved = 0
    while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1):
        src.execute_command("MIGRATE", target[0], target[1], "", 0, 5000, "KEYS", *keys)
        moved += len(keys)
        # Longer than redis-py's own resends last (16 tries, under half a second): the calls
        # that meet the split slot outlast them.
        time.sleep(0.15)
    # The target first, then the source, then everyone else (the order CLUSTER SETSLOT's
    # documentation gives, so no node redirects to a node that does not own the slot yet).
    for server in [dst, src] + [node(*p) for p in every if p not in (source, target)]:
        server.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
    return moved


@pytest.mark.redis_cluster
def test_an_account_whose_slot_moves_under_traffic_loses_no_call_and_no_unit(cluster):  # noqa: F811
    url, limiter = cluster
    client = limiter.client
    assert isinstance(client, RedisCluster)
    policy = make_policy(rate_per_minute=1_000_000, burst=1_000_000, quota=10**9)
    accounts = list(range(9101, 9109))
    mover = accounts[0]
    slot = client.keyslot(limiter._key(mover, "rate"))
    source = primary_of(limiter, mover)
    target = sorted(primaries(url) - {source})[0]

    node(*target).config_resetstat()
    node(*source).config_resetstat()
    with Traffic(limiter, accounts, policy, clients=16) as traffic:
        time.sleep(0.5)
        started = time.monotonic()
        moved = migrate_slot(slot, source, target, sorted(primaries(url)))
        finished = time.monotonic()
        time.sleep(0.5)
    after = primary_of(limiter, mover)
    asked = stat(node(*target), "commandstats", "cmdstat_asking")
    tried_again = stat(node(*source), "errorstats", "errorstat_TRYAGAIN")

    tally = traffic.tally
    admitted = tally.admitted[mover]
    counted = sum(count.units for counts in limiter.live_usage(mover).values() for count in counts)
    print(
        f"\nslot {slot} of account {mover} moved {source} -> {target}: {moved} keys in "
        f"{finished - started:.2f} s; admitted {dict(tally.admitted)}, "
        f"unavailable {dict(tally.unavailable)}, counted {counted}; ASKING sent to the "
        f"target {asked} times, TRYAGAIN from the source {tried_again} times"
    )
    assert tally.other == []
    assert sum(tally.unavailable.values()) == 0, "a redirection was taken for Redis being down"
    assert moved > 0 and after == target
    # The traffic did meet the half-moved slot: clients followed ASK to the target.
    assert asked > 0
    # Every admitted call counted once, on whichever node held the slot when it ran.
    for account in accounts:
        units = sum(
            count.units for counts in limiter.live_usage(account).values() for count in counts
        )
        assert units == tally.admitted[account]
    assert counted == admitted > 0
    # Calls keep landing after the move, on the target, with the scripts it loaded on demand.
    decision = limiter.hit(
        account_id=mover, key_id=mover, endpoint="lookup", cost=1, policy=policy, seed=0
    )
    assert decision.admitted
    slots = node(*target).execute_command("CLUSTER COUNTKEYSINSLOT", slot)
    assert slots > 0
