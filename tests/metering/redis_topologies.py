"""What the topology tests do to a Redis Cluster or a Sentinel setup: find where an account's
keys live, kill a primary (SIGKILL: a crash, nothing flushed, no handover), bring it back, and
wait for the topology to be whole again; and the client threads that keep calling meanwhile.

The servers are the ones ``.ci/redis-topologies.sh start`` runs: each was started from a config
file, which ``INFO server`` names, so a killed node is restarted as it was.
"""

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from metering.limiter.base import LimiterUnavailable, Outcome, Policy
from metering.limiter.redis import RedisLimiter
from metering.limiter.topology import redis_target


def wait_until(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"waited {seconds:.0f} s for {what}")


def node(host: str, port: int) -> redis.Redis:
    return redis.Redis(host=host, port=port, decode_responses=True, socket_timeout=2)


def primary_of(limiter: RedisLimiter, account_id: int) -> tuple[str, int]:
    """The primary the cluster client routes the account's keys to."""
    client = limiter.client
    assert isinstance(client, RedisCluster)
    owner = client.get_node_from_key(limiter._key(account_id, "rate"))
    return owner.host, owner.port


def answering_node(url: str) -> redis.Redis:
    """The first node of the URL that answers (a test may have killed another)."""
    for host, port in redis_target(url).nodes:
        server = node(host, port)
        try:
            server.ping()
        except redis.ConnectionError:
            continue
        return server
    raise AssertionError(f"no node of {url} answers")


def primaries(url: str) -> set[tuple[str, int]]:
    """The primaries serving slots, as the cluster says (CLUSTER SLOTS)."""
    slots = answering_node(url).execute_command("CLUSTER SLOTS")
    return {(host, port) for (host, port, *_) in (entry[2] for entry in slots)}


def replica_of(url: str, primary: tuple[str, int]) -> tuple[str, int]:
    nodes = answering_node(url).execute_command("CLUSTER NODES")
    primary_id = nodes["{}:{}".format(*primary)]["node_id"]
    for address, fields in nodes.items():
        if fields["master_id"] == primary_id and "fail" not in fields["flags"]:
            host, port = address.split("@")[0].rsplit(":", 1)
            return host, int(port)
    raise AssertionError(f"{primary} has no replica")


def kill(host: str, port: int) -> str:
    """SIGKILL the server (one the topology script started); return its config file."""
    info = node(host, port).info("server")
    os.kill(int(info["process_id"]), signal.SIGKILL)
    return info["config_file"]


def restart(config_file: str) -> None:
    # The config says daemonize yes: redis-server returns once the server is forked off.
    subprocess.run(["redis-server", config_file], check=True, timeout=30)


def cluster_whole(url: str) -> bool:
    """Three primaries serving every slot, each with a replica in sync, every node linked."""
    # redis-py parses the reply: {"host:port": {"flags": ..., "connected": ...}}.
    nodes = answering_node(url).execute_command("CLUSTER NODES")
    flags = [fields["flags"] for fields in nodes.values()]
    links = [fields["connected"] for fields in nodes.values()]
    addresses = list(nodes)
    if len(flags) != 6 or not all(links) or any("fail" in f for f in flags):
        return False
    if sum("slave" in f for f in flags) != 3:
        return False
    for address in addresses:
        h, p = address.rsplit(":", 1)
        server = node(h, int(p))
        if server.cluster("INFO")["cluster_state"] != "ok":
            return False
        replication = server.info("replication")
        if replication["role"] == "slave" and replication["master_link_status"] != "up":
            return False
    return True


def sentinel_for(url: str) -> Sentinel:
    target = redis_target(url)
    return Sentinel(list(target.nodes), socket_timeout=2)


def sentinel_whole(url: str) -> bool:
    """The master with two replicas in sync, as every sentinel sees it."""
    target = redis_target(url)
    host, port = sentinel_for(url).discover_master(target.master_name)
    if node(host, port).info("replication")["connected_slaves"] != 2:
        return False
    for sentinel_host, sentinel_port in target.nodes:
        state = node(sentinel_host, sentinel_port).sentinel_master(target.master_name)
        assert isinstance(state, dict)
        if (state["ip"], int(state["port"])) != (host, int(port)):
            return False
        if state["num-slaves"] != 2 or state["num-other-sentinels"] != 2:
            return False
        replicas = node(sentinel_host, sentinel_port).sentinel_slaves(target.master_name)
        if any(replica["is_sdown"] or replica["is_odown"] for replica in replicas):
            return False
    return True


@dataclass
class Tally:
    """What the clients saw, per account: calls admitted (each counted 1 unit), refused by the
    limiter (rate or quota), and unanswered (``LimiterUnavailable``: the API's 503)."""

    admitted: Counter[int] = field(default_factory=Counter)
    refused: Counter[int] = field(default_factory=Counter)
    unavailable: Counter[int] = field(default_factory=Counter)
    # Monotonic time of each account's last admission and last failure.
    last_admitted: dict[int, float] = field(default_factory=dict)
    last_unavailable: dict[int, float] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Traffic:
    """``clients`` threads calling ``limiter.hit`` (1 unit) on the accounts in turn until
    stopped: a web tier under load while the test breaks Redis."""

    def __init__(self, limiter: RedisLimiter, accounts: list[int], policy: Policy, *, clients: int):
        self.limiter, self.accounts, self.policy = limiter, accounts, policy
        self.tally = Tally()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(index,), daemon=True)
            for index in range(clients)
        ]

    def __enter__(self) -> "Traffic":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self, index: int) -> None:
        calls = 0
        while not self.stop.is_set():
            account = self.accounts[(index + calls) % len(self.accounts)]
            calls += 1
            try:
                decision = self.limiter.hit(
                    account_id=account,
                    key_id=account,
                    endpoint="lookup",
                    cost=1,
                    policy=self.policy,
                    seed=0,
                )
            except LimiterUnavailable:
                with self.tally.lock:
                    self.tally.unavailable[account] += 1
                    self.tally.last_unavailable[account] = time.monotonic()
                time.sleep(0.005)  # a refused web client does not spin
                continue
            except Exception as exc:  # anything else is a bug the test must report
                with self.tally.lock:
                    self.tally.other.append(repr(exc))
                continue
            with self.tally.lock:
                if decision.outcome == Outcome.ADMITTED:
                    self.tally.admitted[account] += 1
                    self.tally.last_admitted[account] = time.monotonic()
                else:
                    self.tally.refused[account] += 1

    def admitted_since(self, account: int, moment: float) -> bool:
        with self.tally.lock:
            return self.tally.last_admitted.get(account, 0) > moment


def counted_units(limiter: RedisLimiter, account_id: int) -> int:
    """Units Redis holds for the account in its usage counters (live and drained)."""
    return sum(
        count.units for counts in limiter.live_usage(account_id).values() for count in counts
    )
