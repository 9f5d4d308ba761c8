"""The production backend: one Lua script per request on Redis, one round trip whatever the outcome.

One server, a Redis Cluster or a Sentinel-watched primary, as ``METERING_REDIS_URL`` says
(``metering.limiter.topology``); the code below is the same for all three.

Keys (``md`` is the prefix; the ``{acct:<id>}`` hash tag puts an account's keys in one slot, so
every script stays legal on Redis Cluster and runs on the primary of that slot):

- ``md:{acct:42}:rate`` GCRA theoretical arrival time (µs); expires when the burst is full again
- ``md:{acct:42}:q:<period start>`` units counted this period; expires a day after the period
- ``md:{acct:42}:u:<minute>`` usage hash of one minute, ``md:{acct:42}:d:<minute>`` once drained
- ``md:{acct:42}:m`` the minutes that still hold usage (what the rollup walks)
- ``md:{acct:42}:t:<minute>`` the tokens of the minute's admitted requests (a retried request
  is recognised, see ``_hit_once``) and the marks of those settled (a settle repeated changes
  nothing, see give_back.lua); expires ``TOKEN_SECONDS`` (180 s) after the minute began

The hot path has an asyncio twin (``hit_async``, ``settle_async``) for the gateway's proxy,
which runs on an event loop: the same scripts, keys, timeouts and retry-with-token scheme through
``redis.asyncio`` clients (one server, a cluster or a Sentinel's primary, as for the sync path).

Usage hashes never expire: they are deleted by the rollup once their rows are committed, so
Redis must run with ``maxmemory-policy noeviction`` (an evicted counter is lost revenue).
"""

import asyncio
import hashlib
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import hiredis
import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.typing import EncodableT

from metering.limiter.base import (
    MICROS,
    TOKEN_SECONDS,
    Bucket,
    Decision,
    Limiter,
    LimiterUnavailable,
    Outcome,
    Policy,
    Reservation,
    Settlement,
    SettleResult,
    UsageCount,
    parse_usage_fields,
    quota_refusal_kind,
    usage_minute,
    usage_suffix,
)
from metering.limiter.topology import (
    AsyncRedisClient,
    RedisClient,
    RedisTarget,
    redis_async_client,
    redis_client,
    redis_client_close,
    redis_target,
)

LUA_DIR = Path(__file__).parent / "lua"
# The scripts the asyncio twin runs, by name: their source and the SHA1 EVALSHA names them by
# (https://redis.io/docs/latest/commands/evalsha/: "the SHA1 digest of a script").
_ASYNC_SOURCES = {name: (LUA_DIR / f"{name}.lua").read_text() for name in ("hit", "give_back")}
_ASYNC_SHAS = {
    name: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    for name, source in _ASYNC_SOURCES.items()
}
_OUTCOMES = {
    0: Outcome.ADMITTED,
    1: Outcome.RATE_LIMITED,
    2: Outcome.QUOTA_EXCEEDED,
    3: Outcome.NEEDS_SEED,
    5: Outcome.STALE,
}
_CLOCK_SKEW = 4
_VOIDED = 6
# give_back.lua's first reply figure.
_SETTLEMENTS = {
    0: Settlement.LATE,
    1: Settlement.SETTLED,
    2: Settlement.LATE,
    3: Settlement.REPEATED,
}
# The quota counter outlives its period by a day so a request that straddles the period's end
# still finds it; the next period counts under a new key.
QUOTA_TTL_AFTER_PERIOD = 86_400
BATCH_TIMEOUT_MS = 5000
# A call whose reply did not come is sent once more (same token, see hit.lua), then voided.
HIT_ATTEMPTS = 2
# Most voids one process keeps while Redis is unreachable (see RedisLimiter._unsent_voids).
_UNSENT_VOIDS_MAX = 10_000
# Most _HitShape kept: a bound well above the keys one process serves in a cache period.
_SHAPES_MAX = 20_000
# The reply may be lost after the script ran: safe to repeat only with the request's token.
_UNANSWERED = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# Replies in a pipeline sent to one node of a cluster that say the slot is served elsewhere
# now (or is being moved): the script did not run there, and the cluster client follows them.
_REDIRECTED = (AskError, TryAgainError, ClusterDownError)
# Raise an account's published version, never lower it (two publishers may race).
_PUBLISH_VERSION = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


# What the hot path's scripts take as arguments (redis-py's EncodableT allows bytes-likes too).
_ScriptArg = str | int
# hiredis packs a command's arguments into one RESP array (hiredis-py's README:
# pack_command(("SET", "key", "value"))). Its stub types the argument as a tuple of exactly one
# item (redis/hiredis-py#195), so it is named here with the type it takes.
_pack_command = cast(Callable[[tuple[_ScriptArg, ...]], bytes], hiredis.pack_command)

# One call of a batch: a script or a command's name, its keys (all in one account's slot), and
# its other arguments.
_Call = tuple[Script | str, list[str], list[EncodableT]]


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"


@contextmanager
def _answered() -> Iterator[None]:
    """Whatever stopped Redis from answering, the caller sees ``LimiterUnavailable``."""
    try:
        yield
    except (RedisError, RedisClusterException) as exc:
        raise LimiterUnavailable(_describe(exc)) from exc


@dataclass(frozen=True, slots=True)
class _Connection:
    # The request path waits at most timeout_ms per attempt; the rollup and the usage pages
    # read larger replies off the request path and get a patient client of their own.
    client: RedisClient
    batch_client: RedisClient
    hit: Script
    give_back: Script
    drain: Script
    discard: Script
    publish: Script


@dataclass(frozen=True, slots=True)
class _AsyncConnection:
    """The hot path's client on one event loop (redis.asyncio's connections belong to the loop
    that opened them: a uvicorn worker has one loop, a test one per call)."""

    client: AsyncRedisClient


@dataclass(frozen=True, slots=True)
class _HitShape:
    """What every hit of one key on one endpoint under one policy sends the same: the account's
    key names, the two usage fields and the policy's figures (only the minute's two keys, the
    clock, the seed and the token change from call to call). Made once and kept
    (``RedisLimiter._shapes``): the hot path then formats two strings per call, not eight."""

    # The policy it was made for: a call under another one (a new period, a new tier, the key
    # cache's next read) makes a new shape.
    policy: Policy
    # "<prefix>:{acct:<id>}:", the start of every key of the account.
    tag: str
    rate_key: str
    quota_key: str
    minutes_key: str
    version_key: str
    # "<key>:<endpoint>": the scripts name each counter "<kind>:" + this.
    usage_suffix: str
    # The counter a quota refusal goes to (q: the quota, c: the spend cap).
    quota_refusal: str
    quota_limit_arg: int


class RedisLimiter(Limiter):
    def __init__(self, url: str, *, timeout_ms: int, prefix: str = "md"):
        self.prefix = prefix
        self.target: RedisTarget = redis_target(url)
        self.timeout_ms = timeout_ms
        self._lock = threading.Lock()
        self._connection: _Connection | None = None
        # (account, key, endpoint) -> the _HitShape of the last policy it was called under.
        # The key cache hands out one principal, and metering.hotpath one Policy, per key for
        # as long as it keeps the key, so a shape is made once per key, endpoint and cache
        # period, and replaced (not added to) when the policy changes. Bounded all the same.
        self._shapes: dict[tuple[int, int, str], _HitShape] = {}
        # The asyncio twin's clients, one per event loop, dropped with their loop.
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncConnection] = (
            weakref.WeakKeyDictionary()
        )
        # Voids that could not reach Redis (``_hit_once``), oldest first: give_back.lua's KEYS
        # and ARGV and the moment past which the token is forgotten and the minute may be
        # rolled up (its minute + TOKEN_SECONDS), when sending it would change nothing. Sent
        # again after the next call Redis answers, from whichever thread or loop makes it.
        self._unsent_voids: deque[_Void] = deque(maxlen=_UNSENT_VOIDS_MAX)

    def _connected(self) -> _Connection:
        """The clients, made on first use: a cluster client connects as it is made, and a
        process must start (and answer 503s) while Redis is down, then find it once it is up."""
        connection = self._connection
        if connection is not None:
            return connection
        with self._lock:
            if self._connection is None:
                try:
                    client = redis_client(self.target, timeout_ms=self.timeout_ms)
                except RedisClusterException as exc:
                    # Not a RedisError: callers (and tests/limiter.py) catch RedisError.
                    raise redis.exceptions.ConnectionError(_describe(exc)) from exc
                try:
                    batch_client = redis_client(self.target, timeout_ms=BATCH_TIMEOUT_MS)
                except RedisClusterException as exc:
                    redis_client_close(client)
                    raise redis.exceptions.ConnectionError(_describe(exc)) from exc

                def script(source: str) -> Script:
                    # https://redis.readthedocs.io/en/stable/lua_scripting.html: EVALSHA, and on
                    # NOSCRIPT (a restarted server, a promoted replica: an empty script cache)
                    # SCRIPT LOAD then EVALSHA again; a cluster client loads it on every
                    # primary (redis-py's COMMAND_FLAGS: SCRIPT LOAD -> PRIMARIES).
                    return client.register_script(source)

                self._connection = _Connection(
                    client=client,
                    batch_client=batch_client,
                    hit=script((LUA_DIR / "hit.lua").read_text()),
                    give_back=script((LUA_DIR / "give_back.lua").read_text()),
                    drain=script((LUA_DIR / "drain.lua").read_text()),
                    discard=script((LUA_DIR / "discard.lua").read_text()),
                    publish=script(_PUBLISH_VERSION),
                )
            return self._connection

    async def _connected_async(self) -> _AsyncConnection:
        """This event loop's client, made on first use (it connects on its first command)."""
        loop = asyncio.get_running_loop()
        connection = self._async.get(loop)
        if connection is not None:
            return connection
        with self._lock:
            connection = self._async.get(loop)
            if connection is None:
                try:
                    client = redis_async_client(self.target, timeout_ms=self.timeout_ms)
                except RedisClusterException as exc:
                    raise redis.exceptions.ConnectionError(_describe(exc)) from exc
                connection = self._async[loop] = _AsyncConnection(client=client)
            return connection

    async def close_async(self) -> None:
        """Close this event loop's client (a uvicorn worker's lifespan shutdown; tests)."""
        connection = self._async.pop(asyncio.get_running_loop(), None)
        if connection is not None:
            await connection.client.aclose()

    @property
    def client(self) -> RedisClient:
        return self._connected().client

    @property
    def batch_client(self) -> RedisClient:
        return self._connected().batch_client

    def publish_version(self, account_id: int, version: int, *, ttl: int) -> None:
        with _answered():
            self._connected().publish(keys=[self._key(account_id, "ver")], args=[version, ttl])

    def _key(self, account_id: int, name: str) -> str:
        return f"{self.prefix}:{{acct:{account_id}}}:{name}"

    def _shape(self, account_id: int, key_id: int, endpoint: str, policy: Policy) -> _HitShape:
        cache_key = (account_id, key_id, endpoint)
        shape = self._shapes.get(cache_key)
        if shape is not None and shape.policy is policy:
            return shape
        tag = self._key(account_id, "")
        limit = policy.quota_limit
        shape = _HitShape(
            policy=policy,
            tag=tag,
            rate_key=f"{tag}rate",
            quota_key=f"{tag}q:{policy.period_key}",
            minutes_key=f"{tag}m",
            version_key=f"{tag}ver",
            usage_suffix=usage_suffix(key_id, endpoint),
            quota_refusal=quota_refusal_kind(policy),
            quota_limit_arg=-1 if limit is None else limit,
        )
        if len(self._shapes) >= _SHAPES_MAX:
            self._shapes.clear()
        self._shapes[cache_key] = shape
        return shape

    def hit(
        self,
        *,
        account_id: int,
        key_id: int,
        endpoint: str,
        cost: int,
        policy: Policy,
        seed: int | None = None,
        now: float | None = None,
        version: int | None = None,
    ) -> Decision:
        wall = time.time() if now is None else now
        keys, args = self._hit_call(account_id, key_id, endpoint, cost, policy, seed, now, version)
        reply = self._hit_once(keys, args)
        return self._decision(reply, account_id, key_id, endpoint, cost, policy, wall, args)

    async def hit_async(
        self,
        *,
        account_id: int,
        key_id: int,
        endpoint: str,
        cost: int,
        policy: Policy,
        seed: int | None = None,
        now: float | None = None,
        version: int | None = None,
    ) -> Decision:
        wall = time.time() if now is None else now
        keys, args = self._hit_call(account_id, key_id, endpoint, cost, policy, seed, now, version)
        reply = await self._hit_once_async(keys, args)
        return self._decision(reply, account_id, key_id, endpoint, cost, policy, wall, args)

    def _hit_call(
        self,
        account_id: int,
        key_id: int,
        endpoint: str,
        cost: int,
        policy: Policy,
        seed: int | None,
        now: float | None,
        version: int | None,
    ) -> tuple[tuple[str, ...], tuple[_ScriptArg, ...]]:
        """hit.lua's KEYS and ARGV, in its order (see its header)."""
        wall = time.time() if now is None else now
        shape = self._shape(account_id, key_id, endpoint, policy)
        minute = usage_minute(wall, policy)
        quota_ttl = int(policy.period_end_epoch - wall) + QUOTA_TTL_AFTER_PERIOD
        keys = (
            shape.rate_key,
            shape.quota_key,
            f"{shape.tag}u:{minute}",
            shape.minutes_key,
            shape.version_key,
            f"{shape.tag}t:{minute}",
        )
        args = (
            cost,
            policy.interval_us,
            policy.burst,
            shape.quota_limit_arg,
            -1 if seed is None else seed,
            max(60, quota_ttl),
            shape.usage_suffix,
            shape.quota_refusal,
            minute,
            -1 if now is None else int(now * MICROS),
            -1 if version is None else version,
            # Names this request in Redis for as long as a copy of it may run (see hit.lua),
            # and until it is settled (give_back.lua).
            secrets.token_hex(8),
        )
        return keys, args

    @staticmethod
    def _decision(
        reply: list[int],
        account_id: int,
        key_id: int,
        endpoint: str,
        cost: int,
        policy: Policy,
        wall: float,
        args: tuple[_ScriptArg, ...],
    ) -> Decision:
        code, remaining, reset_us, retry_us, used, now_us = reply
        minute, token = int(args[8]), str(args[11])
        if code == _CLOCK_SKEW:
            raise LimiterUnavailable(
                f"this host's clock is {abs(now_us / MICROS - wall):.0f} s off Redis's; "
                "usage would land in the wrong minute (run NTP)"
            )
        if code == _VOIDED:
            raise LimiterUnavailable("this request was voided by an earlier attempt")
        decision = Decision(
            outcome=_OUTCOMES[code],
            account_id=account_id,
            key_id=key_id,
            endpoint=endpoint,
            cost=cost,
            policy=policy,
            rate_remaining=int(remaining),
            rate_reset=reset_us / MICROS,
            retry_after=retry_us / MICROS,
            quota_used=int(used),
            now=now_us / MICROS,
            minute=minute,
            token=token,
        )
        if decision.outcome == Outcome.QUOTA_EXCEEDED:
            decision.retry_after = max(0.0, policy.period_end_epoch - decision.now)
        return decision

    def _hit_once(self, keys: tuple[str, ...], args: tuple[_ScriptArg, ...]) -> list[int]:
        """Run hit.lua so that the request is counted at most once, whatever the network does.

        A timeout or a dropped connection says nothing of whether the script ran, so the same
        request (same token) is sent once more: a slow reply under load, or a connection the
        server closed, is not worth a 503. If that fails too, the request is voided (give_back
        with its token), so that a copy still on its way counts nothing and a copy that ran is
        given back: a refused call is not billed. Only when the void cannot reach Redis either
        may a refused call stay counted; the error says so, for the operator's log.
        """
        failure: BaseException | None = None
        unanswered = False
        attempt = 0
        while attempt < HIT_ATTEMPTS:
            attempt += 1
            try:
                # Inside the try: a cluster down when the process started fails here.
                connection = self._connected()
                reply = _run_script(connection.client, connection.hit, keys, args)
            except _UNANSWERED as exc:
                failure, unanswered = exc, True
            except (RedisError, RedisClusterException) as exc:
                # An error reply (CLUSTERDOWN, OOM...) is Redis deciding not to run the script.
                failure = exc
                break
            else:
                if self._unsent_voids:
                    self._send_voids(connection)
                return reply
        assert failure is not None
        message = f"{_describe(failure)} (attempt {attempt} of {HIT_ATTEMPTS})"
        if unanswered:
            void = _void(keys, args)
            try:
                connection = self._connected()
                _run_script(connection.client, connection.give_back, *void.call)
            except (RedisError, RedisClusterException) as exc:
                self._unsent_voids.append(void)
                message += _void_failed(exc)
        raise LimiterUnavailable(message) from failure

    def _send_voids(self, connection: _Connection) -> None:
        """Send the voids Redis missed while it was unreachable, now that it answers again: a
        primary killed after running a script, and after passing it to the replica promoted in
        its place, never sent the reply; the call was refused, and its void now gives its units
        back (a void sent twice changes nothing, give_back.lua). Stops at the first that fails
        again, which waits for the next call."""
        for _ in range(len(self._unsent_voids)):
            try:
                void = self._unsent_voids.popleft()
            except IndexError:  # another thread sent the rest
                return
            if time.time() >= void.forgotten_at:
                continue
            try:
                _run_script(connection.client, connection.give_back, *void.call)
            except (RedisError, RedisClusterException):
                self._unsent_voids.appendleft(void)
                return

    async def _hit_once_async(
        self, keys: tuple[str, ...], args: tuple[_ScriptArg, ...]
    ) -> list[int]:
        """``_hit_once`` on the event loop's client: the same resend and void."""
        failure: BaseException | None = None
        unanswered = False
        attempt = 0
        while attempt < HIT_ATTEMPTS:
            attempt += 1
            try:
                connection = await self._connected_async()
                reply = await _run_script_async(connection, "hit", keys, args)
            except _UNANSWERED as exc:
                failure, unanswered = exc, True
            except (RedisError, RedisClusterException) as exc:
                failure = exc
                break
            else:
                if self._unsent_voids:
                    await self._send_voids_async(connection)
                return reply
        assert failure is not None
        message = f"{_describe(failure)} (attempt {attempt} of {HIT_ATTEMPTS})"
        if unanswered:
            void = _void(keys, args)
            try:
                connection = await self._connected_async()
                await _run_script_async(connection, "give_back", *void.call)
            except (RedisError, RedisClusterException) as exc:
                self._unsent_voids.append(void)
                message += _void_failed(exc)
        raise LimiterUnavailable(message) from failure

    async def _send_voids_async(self, connection: _AsyncConnection) -> None:
        """``_send_voids`` on the event loop's client."""
        for _ in range(len(self._unsent_voids)):
            try:
                void = self._unsent_voids.popleft()
            except IndexError:
                return
            if time.time() >= void.forgotten_at:
                continue
            try:
                await _run_script_async(connection, "give_back", *void.call)
            except (RedisError, RedisClusterException):
                self._unsent_voids.appendleft(void)
                return

    def _settle_call(
        self, reservation: Reservation, units: int, error: bool, now: float | None
    ) -> tuple[tuple[str, ...], tuple[_ScriptArg, ...]]:
        """give_back.lua's KEYS and ARGV (see its header) to keep ``units`` of a call."""
        kept = 0 if error else min(max(units, 0), reservation.cost)
        account_id = reservation.account_id
        keys = (
            self._key(account_id, "rate"),
            self._key(account_id, f"q:{reservation.period_key}"),
            self._key(account_id, f"u:{reservation.minute}"),
            self._key(account_id, f"t:{reservation.minute}"),
        )
        args: tuple[_ScriptArg, ...] = (
            reservation.cost - kept,
            reservation.interval_us,
            usage_suffix(reservation.key_id, reservation.endpoint),
            -1 if now is None else int(now * MICROS),
            reservation.token,
            reservation.minute,
            "error" if error else "settle",
        )
        return keys, args

    def settle(
        self,
        reservation: Reservation,
        *,
        units: int,
        error: bool = False,
        now: float | None = None,
    ) -> SettleResult:
        keys, args = self._settle_call(reservation, units, error, now)
        with _answered():
            connection = self._connected()
            reply = _run_script(connection.client, connection.give_back, keys, args)
        return _settle_result(reply)

    async def settle_async(
        self,
        reservation: Reservation,
        *,
        units: int,
        error: bool = False,
        now: float | None = None,
    ) -> SettleResult:
        keys, args = self._settle_call(reservation, units, error, now)
        with _answered():
            connection = await self._connected_async()
            reply = await _run_script_async(connection, "give_back", keys, args)
        return _settle_result(reply)

    def pending_buckets(self, *, before: int) -> list[Bucket]:
        # SCAN walks the whole keyspace: fine once a minute for the rollup; on a very large
        # shared Redis, give the metering keys a database of their own. On a cluster,
        # redis-py sends SCAN to every primary (COMMAND_FLAGS: SCAN -> PRIMARIES) and walks
        # each one's cursor (RedisCluster.scan_iter).
        batch = self.batch_client
        with _answered():
            index_keys = list(batch.scan_iter(match=f"{self.prefix}:{{acct:*}}:m", count=1000))
            minutes = self._batch([("SMEMBERS", [key], []) for key in index_keys])
        buckets: list[Bucket] = []
        for key, members in zip(index_keys, minutes, strict=True):
            account_id = int(key[key.index("{acct:") + 6 : key.index("}")])
            buckets.extend(
                Bucket(account_id=account_id, minute=int(minute))
                for minute in members
                if int(minute) < before
            )
        return sorted(buckets)

    def drain(self, buckets: list[Bucket]) -> dict[Bucket, list[UsageCount]]:
        with _answered():
            results = self._batch(
                [
                    (
                        self._connected().drain,
                        [
                            self._key(bucket.account_id, f"u:{bucket.minute}"),
                            self._key(bucket.account_id, f"d:{bucket.minute}"),
                        ],
                        [],
                    )
                    for bucket in buckets
                ]
            )
        return {
            bucket: parse_usage_fields(_pairs(flat))
            for bucket, flat in zip(buckets, results, strict=True)
        }

    def discard(self, buckets: list[Bucket]) -> None:
        with _answered():
            self._batch(
                [
                    (
                        self._connected().discard,
                        [
                            self._key(bucket.account_id, f"d:{bucket.minute}"),
                            self._key(bucket.account_id, "m"),
                            self._key(bucket.account_id, f"u:{bucket.minute}"),
                        ],
                        [bucket.minute],
                    )
                    for bucket in buckets
                ]
            )

    def _batch(self, calls: list[_Call]) -> list[Any]:
        """Run many one-account calls in one pipeline per server; their replies, in order.

        A cluster pipeline cannot carry scripts across slots cheaply (redis-py asks the server
        for every EVALSHA's keys), so calls are grouped by the primary their first key's slot
        is on, and each group goes down that node's own pipeline (a plain one: EVALSHA after
        loading missing scripts). A call whose slot moved meanwhile is answered by a
        redirection instead of running; it is sent again through the cluster client, which
        follows it. Every call here may run twice without harm (drain and discard are
        idempotent, the rest reads or deletes).
        """
        if not calls:
            return []
        batch = self.batch_client
        groups: dict[str, tuple[redis.Redis, list[int]]] = {}
        for index, (_, keys, _) in enumerate(calls):
            name, server = self._server_for(batch, keys[0])
            groups.setdefault(name, (server, []))[1].append(index)
        replies: list[Any] = [None] * len(calls)
        for server, indexes in groups.values():
            pipe = server.pipeline(transaction=False)
            for index in indexes:
                _queue(pipe, *calls[index])
            for index, reply in zip(indexes, pipe.execute(raise_on_error=False), strict=True):
                replies[index] = reply
        for index, reply in enumerate(replies):
            if isinstance(reply, _REDIRECTED):
                replies[index] = _queue(batch, *calls[index])
            elif isinstance(reply, Exception):
                raise reply
        return replies

    @staticmethod
    def _server_for(batch: RedisClient, key: str) -> tuple[str, redis.Redis]:
        """The server holding ``key``: the one server, or the primary of the key's slot."""
        if isinstance(batch, RedisCluster):
            node = batch.get_node_from_key(key)
            return node.name, batch.get_redis_connection(node)
        return "", batch

    def live_usage(self, account_id: int) -> dict[int, list[UsageCount]]:
        batch = self.batch_client
        with _answered():
            minutes = sorted(int(m) for m in batch.smembers(self._key(account_id, "m")))
            if not minutes:
                return {}
            # One MULTI/EXEC: a minute drained between reading its live and its sealed hash
            # would otherwise be read twice or not at all. Every key is in the account's slot,
            # which a cluster transaction requires (redis-py >= 6.2 sends it to that slot's
            # primary; see ClusterPipeline's TransactionStrategy).
            pipe = batch.pipeline(transaction=True)
            for minute in minutes:
                pipe.hgetall(self._key(account_id, f"u:{minute}"))
                pipe.hgetall(self._key(account_id, f"d:{minute}"))
            replies = pipe.execute()
        usage = {}
        for index, minute in enumerate(minutes):
            merged: dict[str, int] = {}
            for fields in replies[2 * index : 2 * index + 2]:
                for name, value in fields.items():
                    merged[name] = merged.get(name, 0) + int(value)
            counts = parse_usage_fields(merged)
            if counts:
                usage[minute] = counts
        return usage

    def quota_used(self, account_id: int, policy: Policy) -> int | None:
        with _answered():
            value = self.batch_client.get(self._key(account_id, f"q:{policy.period_key}"))
        return None if value is None else int(value)

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            redis_client_close(connection.client)
            redis_client_close(connection.batch_client)

    def reset(self) -> None:
        """Delete this prefix's keys on every primary. Raises RedisError, not
        LimiterUnavailable: tests/limiter.py skips the reset when Redis is down."""
        keys = self.batch_client.scan_iter(match=f"{self.prefix}:{{acct:*", count=1000)
        # One key per DEL (a cluster's multi-key DEL must stay in one slot), pipelined.
        self._batch([("DEL", [key], []) for key in keys])


# While a reshard moves an account's slot to another primary, a script whose keys are split
# between the two nodes is answered TRYAGAIN, and the others ASK (https://redis.io/docs/latest/
# operate/oss_and_stack/reference/cluster-spec/, "ASK redirection", "Multi-key operations").
# redis-py's cluster client resends it, following ASK, until its 16 tries are spent (under half a
# second), then raises ClusterError("TTL exhausted."). None of those replies ran the script, so
# it is sent again for up to RESHARD_WAIT_SECONDS more rather than refused as if Redis were down
# (tests/metering/test_limiter_slot_migration.py moves a slot under traffic).
RESHARD_WAIT_SECONDS = 1.0
RESHARD_PAUSE_SECONDS = 0.02


def _resharding(exc: Exception) -> bool:
    # ClusterDownError (CLUSTERDOWN: no node serves the slot) is a ClusterError too: not this.
    return isinstance(exc, TryAgainError) or (
        type(exc) is ClusterError and str(exc).startswith("TTL exhausted")
    )


def _reshard_deadline(exc: Exception, deadline: float | None) -> float:
    """The moment to stop resending; raises ``exc`` when it is not a reshard or time is up."""
    now = time.monotonic()
    if not _resharding(exc) or (deadline is not None and now >= deadline):
        raise exc
    return deadline if deadline is not None else now + RESHARD_WAIT_SECONDS


def _run_script(
    client: RedisClient, script: Script, keys: Sequence[str], args: Sequence[_ScriptArg]
) -> Any:
    """``script(keys=keys, args=args)``, as redis-py runs it, in fewer steps on one server.

    On one server (or a Sentinel's primary) the call takes a connection from the client's own
    pool, sends EVALSHA and reads the reply on it, and gives it back: what ``Redis.
    execute_command`` does, without the layers the hot path pays for and does not use (the
    Script and evalsha wrappers, a retry policy of no retries, the per-command observability
    hooks of redis-py 8, response callbacks EVALSHA has none of). Measured in one process (best
    of 7 x 4,000 calls, 2026-12-01): ``hit()`` 24 µs of CPU, 42 µs through ``Script.__call__``;
    a redis-py PING 19-21 µs (docs/performance.md, "The hot path").
    Everything that matters is still redis-py's: the pool (fork safety, a connection with
    unread data replaced before use), the connection (its timeouts, and its disconnect on a
    timeout or a socket error, so the next attempt starts on a fresh connection), the hiredis
    parser, a Sentinel connection's READONLY handling, and the error classes the caller sorts.
    On NOSCRIPT (a restarted server, a promoted replica) the script is loaded and sent again,
    as ``Script.__call__`` does (https://redis.readthedocs.io/en/stable/lua_scripting.html):
    the script did not run, so sending it again cannot count the call twice.

    A cluster client routes each call by its keys' slot and follows MOVED and ASK replies; it
    keeps redis-py's own path.
    """
    if isinstance(client, RedisCluster):
        deadline = None
        while True:
            try:
                return script(keys=keys, args=args)
            except (TryAgainError, ClusterError) as exc:
                deadline = _reshard_deadline(exc, deadline)
                time.sleep(RESHARD_PAUSE_SECONDS)
    # hiredis packs the command itself: redis-py's serializer would first copy the arguments
    # to look for bytearrays, which these (str and int) never are.
    command = [_pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))]
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        try:
            connection.send_packed_command(command)
            return connection.read_response()
        except NoScriptError:
            script.sha = client.script_load(script.script)
            connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return connection.read_response()
    finally:
        # As Redis.execute_command: a connection a server notice marked for reconnection
        # (RESP3 maintenance notifications) is reconnected before it goes back to the pool.
        try:
            if connection.should_reconnect():
                connection.disconnect()
                connection.connect()
        finally:
            pool.release(connection)


async def _run_script_async(
    connection: _AsyncConnection,
    name: str,
    keys: Sequence[str],
    args: Sequence[_ScriptArg],
) -> Any:
    """EVALSHA of one of the hot path's scripts on the event loop's client; on NOSCRIPT (a
    restarted server, a promoted replica: an empty script cache) SCRIPT LOAD, then EVALSHA
    again, as redis-py's ``AsyncScript.__call__`` does
    (https://redis.readthedocs.io/en/stable/lua_scripting.html): the script did not run, so
    sending it again cannot count the call twice.

    On one server (or a Sentinel's primary) the command goes straight down a connection of the
    client's pool, packed by hiredis, as ``_run_script`` does for the sync path: measured on
    this 2-CPU host under load (3,000 PINGs, 2026-12-01), 172-209 µs of CPU through the pool's
    connection against 258-290 µs through ``execute_command``. What matters stays redis-py's:
    the pool, and the connection, which disconnects itself on a timeout, a socket error or a
    cancellation (``redis.asyncio.connection.AbstractConnection.read_response``), so a reply
    that never came is never read as the next call's; a Sentinel connection's READONLY
    handling. A cluster client routes EVALSHA to the primary of its keys' slot (it reads
    ``numkeys``) and sends SCRIPT LOAD to every primary (redis-py's COMMAND_FLAGS, which
    redis.asyncio.cluster shares: SCRIPT LOAD -> PRIMARIES)."""
    client = connection.client
    sha = _ASYNC_SHAS[name]
    if isinstance(client, AsyncRedisCluster):
        deadline = None
        while True:
            try:
                try:
                    return await client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
                except NoScriptError:
                    await client.execute_command("SCRIPT LOAD", _ASYNC_SOURCES[name])
                    return await client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            except (TryAgainError, ClusterError) as exc:
                deadline = _reshard_deadline(exc, deadline)
                await asyncio.sleep(RESHARD_PAUSE_SECONDS)
    pool = client.connection_pool
    pooled = await pool.get_connection()
    try:
        await pooled.send_packed_command([_pack_command(("EVALSHA", sha, len(keys), *keys, *args))])
        try:
            return await pooled.read_response()
        except NoScriptError:
            await pooled.send_command("SCRIPT", "LOAD", _ASYNC_SOURCES[name])
            await pooled.read_response()
            await pooled.send_command("EVALSHA", sha, len(keys), *keys, *args)
            return await pooled.read_response()
    finally:
        await pool.release(pooled)


@dataclass(frozen=True, slots=True)
class _Void:
    # give_back.lua's KEYS and ARGV.
    call: tuple[tuple[str, ...], tuple[_ScriptArg, ...]]
    # Epoch seconds from which Redis has forgotten the token (and the rollup may take the
    # minute): a void sent later changes nothing.
    forgotten_at: int


def _void(keys: tuple[str, ...], args: tuple[_ScriptArg, ...]) -> _Void:
    """The void of a hit whose reply never came: rate, quota, usage and tokens keys; its whole
    cost, interval, counters' suffix, clock, token and minute."""
    cost, interval, *_, suffix, _, minute, now_us, _, token = args
    return _Void(
        call=((*keys[:3], keys[5]), (cost, interval, suffix, now_us, token, minute, "void")),
        forgotten_at=int(minute) + TOKEN_SECONDS,
    )


def _void_failed(exc: BaseException) -> str:
    return (
        f"; voiding it failed too ({_describe(exc)}): it is sent again after the next call "
        f"Redis answers, within {TOKEN_SECONDS} s of the call's minute; if an attempt ran "
        "and the void never arrives, this call stays counted"
    )


def _settle_result(reply: list[int]) -> SettleResult:
    code, given_back, error = reply
    settlement = _SETTLEMENTS[int(code)]
    return SettleResult(
        settlement=settlement,
        given_back=0 if settlement == Settlement.LATE else int(given_back),
        error=bool(error),
    )


def _queue(
    client: RedisClient | redis.client.Pipeline,
    command: Script | str,
    keys: list[str],
    args: list[EncodableT],
) -> Any:
    """Send (or queue, on a pipeline) one ``_batch`` call."""
    if isinstance(command, str):
        return client.execute_command(command, *keys, *args)
    return command(keys=keys, args=args, client=client)


def _pairs(flat: list[str] | dict[str, str]) -> dict[str, int]:
    """HGETALL through EVAL arrives as a flat [field, value, ...] list."""
    if isinstance(flat, dict):
        return {name: int(value) for name, value in flat.items()}
    return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}
