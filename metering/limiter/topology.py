"""Where the limiter's Redis lives, read from ``METERING_REDIS_URL``, and the clients for it.

Three topologies, told apart by the URL's scheme; nothing else changes for the operator:

- one server: ``redis://``, ``rediss://`` (TLS) or ``unix://``, as redis-py reads them
  (https://redis.readthedocs.io/en/stable/connections.html#redis.Redis.from_url);
- Redis Cluster: ``redis-cluster://[user:password@]host:port[,host:port...]`` (TLS:
  ``rediss-cluster://``). The nodes listed are only where the client starts; it learns the
  others from ``CLUSTER SLOTS``. A cluster has one database, so no path and no ``db``;
- Sentinel: ``redis-sentinel://[user:password@]host:port[,host:port...]/<master name>[?db=N]``
  (TLS to the data nodes and the sentinels: ``rediss-sentinel://``). The hosts are the
  sentinels; the credentials are the data nodes'. Sentinels with a password of their own take
  ``sentinel_username``/``sentinel_password`` query options. The database is the ``db``
  query option only: ``/mdk/3`` is refused rather than guessed at.

TLS options are redis-py's own query options, read the same way in all three forms:
``ssl_ca_certs`` (the CA that signed the servers' certificates, when not one the system trusts),
``ssl_certfile`` and ``ssl_keyfile`` (the client's certificate, which Redis asks for unless
``tls-auth-clients no``), ``ssl_cert_reqs`` (``required``, the default; ``optional``; ``none``)
and ``ssl_check_hostname``. They need a TLS scheme, and the files must exist.

Anything else is an ``ImproperlyConfigured`` naming what is wrong, raised when the limiter is
built and by the ``metering.E001`` check (``manage.py check``), before any request.
"""

import enum
import os
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

# Either kind of client the limiter talks through: a plain one (one server, or a Sentinel's
# current primary) or a cluster client routing each key to its slot's primary.
RedisClient = redis.Redis | RedisCluster
# The same for an event loop (the gateway's proxy): redis.asyncio's clients.
AsyncRedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


class Topology(enum.StrEnum):
    SERVER = "server"
    CLUSTER = "cluster"
    SENTINEL = "sentinel"


# The schemes redis-py does not read: the topology they name, and whether TLS is on.
_SCHEMES = {
    "redis-cluster": (Topology.CLUSTER, False),
    "rediss-cluster": (Topology.CLUSTER, True),
    "redis-sentinel": (Topology.SENTINEL, False),
    "rediss-sentinel": (Topology.SENTINEL, True),
}
# A node listed without a port: Redis's and Sentinel's own defaults.
DEFAULT_PORTS = {Topology.CLUSTER: 6379, Topology.SENTINEL: 26379}
_SENTINEL_OPTIONS = {"db", "sentinel_username", "sentinel_password"}
# redis-py's TLS options (https://redis.readthedocs.io/en/stable/connections.html, SSLConnection):
# those naming a file, and the two that take a word.
_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_TLS_CERT_REQS = ("required", "optional", "none")
_TLS_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_TLS_OPTIONS = {*_TLS_FILES, "ssl_cert_reqs", "ssl_check_hostname"}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What ``METERING_REDIS_URL`` names. For one server only ``url`` matters (redis-py reads
    it); the others are parsed here because redis-py has no URL form for them."""

    topology: Topology
    url: str
    # (host, port) of the cluster's start nodes or of the sentinels.
    nodes: tuple[tuple[str, int], ...] = ()
    master_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    # redis-py's TLS keyword arguments from the URL's options (cluster and Sentinel; for one
    # server redis-py reads them from the URL itself), as (name, value) pairs.
    tls: tuple[tuple[str, str | bool], ...] = ()

    @property
    def tls_kwargs(self) -> dict[str, Any]:
        return dict(self.tls)


def _fail(url: str, problem: str) -> ImproperlyConfigured:
    # The URL may hold passwords (before the hosts, or as options): show neither.
    try:
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    except ValueError:
        shown = url.split("://", 1)[0] + "://..."
    return ImproperlyConfigured(f"METERING_REDIS_URL ({shown}): {problem}")


def _nodes(url: str, hosts: str, default_port: int) -> tuple[tuple[str, int], ...]:
    nodes = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            raise _fail(url, "an empty host in the host list")
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            port_text = rest.removeprefix(":") if rest else ""
            if rest and not rest.startswith(":"):
                raise _fail(url, f"{item!r} is not host:port")
        else:
            host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
        if not host:
            raise _fail(url, f"{item!r} has no host")
        if not port_text:
            nodes.append((host, default_port))
            continue
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise _fail(url, f"{item!r}: the port must be a number from 1 to 65535")
        nodes.append((host, int(port_text)))
    return tuple(nodes)


def redis_target(url: str) -> RedisTarget:
    """Read ``METERING_REDIS_URL``; raise ``ImproperlyConfigured`` naming what is wrong."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in {"redis", "rediss", "unix"}:
        try:
            parse_url(url)
        except ValueError as exc:
            raise _fail(url, str(exc)) from None
        # redis-py reads the options itself (the first of each); only the TLS ones are checked.
        given = parse_qs(urlsplit(url).query, keep_blank_values=True)
        _tls_options(
            url, {name: values[0] for name, values in given.items()}, ssl=scheme == "rediss"
        )
        return RedisTarget(topology=Topology.SERVER, url=url)
    if scheme not in _SCHEMES:
        raise _fail(
            url,
            "the scheme must be redis://, rediss://, unix:// (one server), redis-cluster:// "
            "or rediss-cluster:// (Redis Cluster), redis-sentinel:// or rediss-sentinel:// "
            "(Sentinel)",
        )
    topology, ssl = _SCHEMES[scheme]
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    if not hosts:
        raise _fail(url, "no host:port to connect to")
    nodes = _nodes(url, hosts, DEFAULT_PORTS[topology])
    options = _single_options(url, parts.query)
    tls = _tls_options(url, options, ssl=ssl)
    options = {name: value for name, value in options.items() if name not in _TLS_OPTIONS}
    cluster = RedisTarget(
        topology=Topology.CLUSTER,
        url=url,
        nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=ssl,
        tls=tuple(tls.items()),
    )
    if topology == Topology.CLUSTER:
        if parts.path.strip("/"):
            raise _fail(url, "a cluster has only database 0: remove the path")
        if options:
            raise _fail(url, f"unknown option(s) {', '.join(sorted(options))} for a cluster")
        return cluster

    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    if len(segments) != 1:
        raise _fail(
            url,
            "name the master after the hosts, and the database as an option: "
            "redis-sentinel://host:port,host:port/<master name>?db=N",
        )
    unknown = set(options) - _SENTINEL_OPTIONS
    if unknown:
        raise _fail(url, f"unknown option(s) {', '.join(sorted(unknown))} for Sentinel")
    db_text = options.get("db", "0")
    if not db_text.isdigit():
        raise _fail(url, f"db={db_text!r} is not a database number")
    return replace(
        cluster,
        topology=Topology.SENTINEL,
        master_name=segments[0],
        db=int(db_text),
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
    )


def _single_options(url: str, query: str) -> dict[str, str]:
    """The URL's query options, each given once."""
    try:
        options = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _fail(url, f"the query {query!r} is not name=value pairs") from None
    for name, values in options.items():
        if len(values) != 1:
            raise _fail(url, f"the option {name} is given {len(values)} times")
    return {name: values[0] for name, values in options.items()}


def _tls_options(url: str, options: dict[str, str], *, ssl: bool) -> dict[str, str | bool]:
    """The TLS options among ``options``, checked: a TLS scheme, files that exist, known words.
    A certificate file that is not there would otherwise surface only at the first connection,
    as a TLS error on every call."""
    given = {name: value for name, value in options.items() if name in _TLS_OPTIONS}
    if not given:
        return {}
    if not ssl:
        raise _fail(
            url,
            f"{', '.join(sorted(given))} need TLS: use rediss://, rediss-cluster:// or "
            "rediss-sentinel://",
        )
    tls: dict[str, str | bool] = {}
    for name, value in given.items():
        if name in _TLS_FILES:
            if not os.path.isfile(value):
                raise _fail(url, f"{name}: no file at {value!r}")
            tls[name] = value
        elif name == "ssl_cert_reqs":
            if value not in _TLS_CERT_REQS:
                raise _fail(url, f"ssl_cert_reqs must be one of {', '.join(_TLS_CERT_REQS)}")
            tls[name] = value
        else:
            if value.lower() not in _TLS_BOOLEANS:
                raise _fail(url, f"{name}={value!r} is not true or false")
            tls[name] = _TLS_BOOLEANS[value.lower()]
    if "ssl_keyfile" in tls and "ssl_certfile" not in tls:
        # (A certificate file may hold its key too: ssl_certfile alone is fine.)
        raise _fail(url, "ssl_keyfile is the key of a client certificate: add ssl_certfile")
    return tls


def redis_client(target: RedisTarget, *, timeout_ms: int) -> RedisClient:
    """A client that gives up after ``timeout_ms`` on connect and on every reply, and never
    sends a command twice by itself: redis-py's default is to retry on a timeout, and a retried
    script may count a call twice (``metering.limiter.redis`` retries with a request token
    instead). Redirections (MOVED/ASK, which mean the command did not run) are still followed.

    A cluster client connects at once to learn the slots (redis-py's ``RedisCluster.__init__``
    runs ``CLUSTER SLOTS``), so it raises here when no start node answers; the other two
    connect on first use.
    """
    seconds = timeout_ms / 1000
    no_retry = Retry(NoBackoff(), 0)
    if target.topology == Topology.SERVER:
        return redis.Redis.from_url(
            target.url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=no_retry,
            health_check_interval=0,
            decode_responses=True,
        )
    if target.topology == Topology.CLUSTER:
        # https://redis.readthedocs.io/en/stable/clustering.html: ``retry`` is the cluster
        # client's own (each node's connections never retry); ``require_full_coverage=False``
        # lets the client start, and serve the accounts on healthy shards, while one shard has
        # no primary.
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            retry=no_retry,
            require_full_coverage=False,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            decode_responses=True,
            username=target.username,
            password=target.password,
            ssl=target.ssl,
            **target.tls_kwargs,
        )
    # https://redis.readthedocs.io/en/stable/connections.html#sentinel-client: the pool asks
    # the sentinels for the primary's address on every new connection, and turns a READONLY
    # reply (the server it knew was demoted) into a ConnectionError, dropping that connection.
    sentinel = Sentinel(
        list(target.nodes), sentinel_kwargs=_sentinel_options(target, seconds, no_retry)
    )
    return sentinel.master_for(target.master_name, **_primary_options(target, seconds, no_retry))


def _sentinel_options(target: RedisTarget, seconds: float, no_retry: Any) -> dict[str, Any]:
    """How a Sentinel client talks to the sentinels themselves (sync and asyncio alike)."""
    return {
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "retry": no_retry,
        "username": target.sentinel_username,
        "password": target.sentinel_password,
        "ssl": target.ssl,
        **target.tls_kwargs,
    }


def _primary_options(target: RedisTarget, seconds: float, no_retry: Any) -> dict[str, Any]:
    """How a Sentinel client talks to the primary it was told of (sync and asyncio alike)."""
    return {
        "db": target.db,
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "retry": no_retry,
        "health_check_interval": 0,
        "decode_responses": True,
        "username": target.username,
        "password": target.password,
        "ssl": target.ssl,
        **target.tls_kwargs,
    }


def redis_async_client(target: RedisTarget, *, timeout_ms: int) -> AsyncRedisClient:
    """``redis_client`` for an event loop, with the same settings: ``timeout_ms`` on connect and
    on every reply, no retries of its own (redis.asyncio's ``Retry`` with ``retries=0``),
    redirections followed. Each client connects on its first command
    (https://redis.readthedocs.io/en/stable/examples/asyncio_examples.html; the cluster client
    learns the slots then: ``RedisCluster.initialize``)."""
    seconds = timeout_ms / 1000
    no_retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
    if target.topology == Topology.SERVER:
        return redis.asyncio.Redis.from_url(
            target.url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=no_retry,
            health_check_interval=0,
            decode_responses=True,
        )
    if target.topology == Topology.CLUSTER:
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[
                redis.asyncio.cluster.ClusterNode(host, port) for host, port in target.nodes
            ],
            retry=no_retry,
            require_full_coverage=False,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            decode_responses=True,
            username=target.username,
            password=target.password,
            ssl=target.ssl,
            **target.tls_kwargs,
        )
    # The asyncio Sentinel pool also asks the sentinels for the primary on each new connection
    # and turns READONLY into a ConnectionError (redis.asyncio.sentinel.SentinelManagedConnection).
    sentinel = redis.asyncio.sentinel.Sentinel(
        list(target.nodes), sentinel_kwargs=_sentinel_options(target, seconds, no_retry)
    )
    return sentinel.master_for(target.master_name, **_primary_options(target, seconds, no_retry))


def redis_client_close(client: RedisClient) -> None:
    """Close the client's connections, and a Sentinel client's connections to the sentinels."""
    client.close()
    sentinel = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    if isinstance(sentinel, Sentinel):
        sentinel.close()
