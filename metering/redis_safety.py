"""Is the metering Redis fit to hold billing data? Its configuration, read and judged.

Between two rollups the limiter's Redis holds usage nobody has billed yet (the last two or three
minutes, more when the job is behind) and every account's quota counter for the period
(``metering/limiter/redis.py``). What a restart or memory pressure does to them depends on the
server's configuration, which the application cannot set but can read (INFO, CONFIG GET):

- **AOF, ``appendfsync always`` or ``everysec``: safe.** Redis writes the AOF before it replies
  (``flushAppendOnlyFile`` in Redis's aof.c: "we are required to write the AOF before replying
  to the client"), so a killed Redis process loses no acknowledged write (``everysec`` may
  postpone that write by up to 2 s while a slow disk is still fsyncing; INFO counts those in
  ``aof_delayed_fsync``). ``always`` also fsyncs before the reply: a host crash loses nothing.
  ``everysec`` fsyncs once a second: a host crash or power loss loses about the last second
  (two at worst). https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/
- **AOF with ``appendfsync no``: unsafe.** The kernel flushes when it likes (~30 s on Linux).
- **RDB only: unsafe.** A restart rolls back to the last snapshot (minutes, by the default
  ``save`` points), and brings back that snapshot's quota counters, which are then *found*, not
  re-seeded: the accounts may spend the rolled-back units again this period.
- **No persistence: unsafe.** A restart loses every minute not rolled up, and each quota counter
  is re-seeded from what is left (``metering.selectors.quota_seed_units``).
- **``maxmemory-policy`` other than ``noeviction``: unsafe.** Usage hashes never expire and
  quota counters carry a TTL, so ``volatile-*`` evicts the quota counters first and
  ``allkeys-*`` anything. https://redis.io/docs/latest/develop/reference/eviction/
- **Redis Cluster with a slot no node serves** (``CLUSTER INFO``: ``cluster_state`` not ``ok``,
  ``cluster_slots_ok`` < 16384): the accounts hashed to it cannot be metered.
  https://redis.io/docs/latest/commands/cluster-info/

Managed Redis often refuses CONFIG (ElastiCache renames it, ACLs may forbid it); what cannot be
read is reported as unknown, never guessed and never an exception. INFO carries
``aof_enabled`` and ``maxmemory_policy``; only ``appendfsync`` and ``save`` need CONFIG GET.
"""

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

# Reads one setting with CONFIG GET; None when refused or unknown.
ConfigReader = Callable[[str], str | None]
# Every slot of a Redis Cluster
# (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/).
CLUSTER_SLOTS = 16384


class Severity(enum.StrEnum):
    # The configuration loses billing data on a restart or under memory pressure.
    UNSAFE = "unsafe"
    # The server would not say (CONFIG refused): nobody has checked it.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Risk:
    """One way the metering Redis can lose billing data, and what the operator does about it."""

    code: str
    severity: Severity
    hint: str


_FIX_PERSISTENCE = (
    "Run the metering Redis with 'appendonly yes' and 'appendfsync everysec' (or 'always'); "
    "see docs/deploy.md."
)
RISKS = {
    risk.code: risk
    for risk in (
        Risk("no-persistence", Severity.UNSAFE, _FIX_PERSISTENCE),
        Risk("rdb-only", Severity.UNSAFE, _FIX_PERSISTENCE),
        Risk("no-aof", Severity.UNSAFE, _FIX_PERSISTENCE),
        Risk("aof-fsync-no", Severity.UNSAFE, _FIX_PERSISTENCE),
        Risk(
            "aof-write-failing",
            Severity.UNSAFE,
            "Redis cannot write its AOF (disk full or read-only?); see its log.",
        ),
        Risk("aof-fsync-unknown", Severity.UNKNOWN, _FIX_PERSISTENCE),
        Risk(
            "eviction-policy",
            Severity.UNSAFE,
            "Set 'maxmemory-policy noeviction' on the metering Redis and give it its own "
            "instance or database, apart from the cache.",
        ),
        Risk(
            "eviction-policy-unknown",
            Severity.UNKNOWN,
            "Make sure the metering Redis runs with 'maxmemory-policy noeviction'.",
        ),
        Risk(
            "slots-uncovered",
            Severity.UNSAFE,
            "Assign every slot to a reachable primary (redis-cli --cluster check / fix).",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One risk found on one Redis node."""

    code: str
    # The node it is about: "host:port" (a cluster's node name), a socket path or a Sentinel
    # service name.
    node: str
    # One sentence for the operator: what the server said and what it costs.
    detail: str

    @property
    def severity(self) -> Severity:
        return RISKS[self.code].severity

    @property
    def hint(self) -> str:
        return RISKS[self.code].hint


@dataclass(frozen=True, slots=True)
class RedisSafety:
    """The findings on every node of the metering Redis, or why it could not be read."""

    findings: list[Finding] = field(default_factory=list)
    # "ConnectionError: ..." when a node did not answer; None when every node did.
    error: str | None = None

    @property
    def status(self) -> str:
        """One word for it: ok, unsafe, unknown (only unreadable settings), or error (a node
        did not answer)."""
        if self.error is not None:
            return "error"
        severities = {finding.severity for finding in self.findings}
        for severity in (Severity.UNSAFE, Severity.UNKNOWN):
            if severity in severities:
                return severity.value
        return "ok"

    @property
    def codes(self) -> list[str]:
        """The risks found, each once, whatever the number of nodes it was found on."""
        return sorted({finding.code for finding in self.findings})


def redis_safety_inspect(client: "redis.Redis | RedisCluster") -> RedisSafety:
    """Read the configuration of every node that holds metering keys (a plain server or a
    Sentinel's current primary; every primary of a cluster) and judge it."""
    try:
        if isinstance(client, RedisCluster):
            findings = [
                finding
                for node in client.get_primaries()
                for finding in _node_findings(client, node.name, target=node)
            ]
        else:
            findings = _node_findings(client, _node_name(client))
    # A cluster client's own failures (no node for a slot, none reachable) are not RedisErrors.
    except (RedisError, RedisClusterException) as exc:
        return redis_safety_unreachable(exc)
    return RedisSafety(findings=findings)


def redis_safety_unreachable(exc: BaseException) -> RedisSafety:
    """What is known of a Redis that did not answer."""
    return RedisSafety(error=f"{exc.__class__.__name__}: {exc}")


def _node_name(client: redis.Redis) -> str:
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    if "host" in kwargs:
        return f"{kwargs['host']}:{kwargs.get('port', 6379)}"
    # A Sentinel pool finds its primary at connection time; name the service.
    return str(getattr(pool, "service_name", "redis"))


def _node_findings(
    client: "redis.Redis | RedisCluster", node: str, *, target: ClusterNode | None = None
) -> list[Finding]:
    # On a cluster every command names its node; a plain client has one.
    options: dict[str, Any] = {} if target is None else {"target_nodes": target}

    def config(name: str) -> str | None:
        """One setting, or None when the server refuses CONFIG or does not know the name."""
        try:
            reply: Mapping[str | None, str | None] = client.config_get(name, **options)
        except ResponseError:
            return None
        return reply.get(name)

    info: Mapping[str, Any] = client.info(**options)
    findings = [
        *_persistence_findings(info, config, node),
        *_eviction_findings(info, config, node),
    ]
    if int(info.get("cluster_enabled", 0)):
        cluster: Mapping[str, Any] = client.execute_command("CLUSTER INFO", **options)
        findings.extend(_cluster_findings(cluster, node))
    return findings


def _persistence_findings(
    info: Mapping[str, Any], config: ConfigReader, node: str
) -> list[Finding]:
    if int(info.get("aof_enabled", 0)):
        findings = []
        if info.get("aof_last_write_status", "ok") != "ok":
            findings.append(Finding("aof-write-failing", node, "the last write to the AOF failed"))
        fsync = config("appendfsync")
        if fsync is None:
            findings.append(
                Finding(
                    "aof-fsync-unknown",
                    node,
                    "AOF is on, but the server would not tell its appendfsync (CONFIG GET "
                    "refused): 'no' would lose up to ~30 s of usage on a host crash",
                )
            )
        elif fsync == "no":
            findings.append(
                Finding(
                    "aof-fsync-no",
                    node,
                    "AOF is on with 'appendfsync no': a host crash loses what the kernel has "
                    "not flushed yet (~30 s of usage on Linux)",
                )
            )
        return findings
    save = config("save")
    if save is None:
        return [
            Finding(
                "no-aof",
                node,
                "AOF is off and the server would not tell its RDB snapshots (CONFIG GET "
                "refused): a restart loses at least the usage since the last snapshot",
            )
        ]
    if save.strip():
        return [
            Finding(
                "rdb-only",
                node,
                f"AOF is off; RDB snapshots only (save '{save}'): a restart loses the usage "
                "since the last snapshot and restores quota counters that old",
            )
        ]
    return [
        Finding(
            "no-persistence",
            node,
            "neither AOF nor RDB is on: a restart loses every minute of usage not rolled up "
            "yet (up to ~3 minutes)",
        )
    ]


def _eviction_findings(info: Mapping[str, Any], config: ConfigReader, node: str) -> list[Finding]:
    policy = info.get("maxmemory_policy") or config("maxmemory-policy")
    if policy is None:
        return [
            Finding(
                "eviction-policy-unknown",
                node,
                "the server would not tell its maxmemory-policy",
            )
        ]
    if policy != "noeviction":
        return [
            Finding(
                "eviction-policy",
                node,
                f"maxmemory-policy is '{policy}': under memory pressure Redis deletes quota "
                "counters or unbilled usage instead of refusing writes",
            )
        ]
    return []


def _cluster_findings(cluster: Mapping[str, Any], node: str) -> list[Finding]:
    state = cluster.get("cluster_state")
    slots_ok = int(cluster.get("cluster_slots_ok", 0))
    if state == "ok" and slots_ok >= CLUSTER_SLOTS:
        return []
    return [
        Finding(
            "slots-uncovered",
            node,
            f"cluster_state is '{state}' with {slots_ok} of {CLUSTER_SLOTS} slots served: "
            "the accounts hashed to the others cannot be metered",
        )
    ]
