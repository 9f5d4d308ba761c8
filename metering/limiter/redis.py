"""The production backend: one Lua script per request on Redis, one round trip whatever the outcome.

Keys (``md`` is the prefix; the ``{acct:<id>}`` hash tag puts an account's keys in one slot, so
every script stays legal on Redis Cluster):

- ``md:{acct:42}:rate`` GCRA theoretical arrival time (µs); expires when the burst is full again
- ``md:{acct:42}:q:<period start>`` units counted this period; expires a day after the period
- ``md:{acct:42}:u:<minute>`` usage hash of one minute, ``md:{acct:42}:d:<minute>`` once drained
- ``md:{acct:42}:m`` the minutes that still hold usage (what the rollup walks)

Usage hashes never expire: they are deleted by the rollup once their rows are committed, so
Redis must run with ``maxmemory-policy noeviction`` (an evicted counter is lost revenue).
"""

import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from redis.typing import EncodableT

from metering.limiter.base import (
    MICROS,
    Bucket,
    Decision,
    Limiter,
    LimiterUnavailable,
    Outcome,
    Policy,
    UsageCount,
    parse_usage_fields,
    usage_field,
    usage_minute,
)

LUA_DIR = Path(__file__).parent / "lua"
_OUTCOMES = {
    0: Outcome.ADMITTED,
    1: Outcome.RATE_LIMITED,
    2: Outcome.QUOTA_EXCEEDED,
    3: Outcome.NEEDS_SEED,
    5: Outcome.STALE,
}
_CLOCK_SKEW = 4
# The quota counter outlives its period by a day so a request that straddles the period's end
# still finds it; the next period counts under a new key.
QUOTA_TTL_AFTER_PERIOD = 86_400
BATCH_TIMEOUT_MS = 5000
# Raise an account's published version, never lower it (two publishers may race).
_PUBLISH_VERSION = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


def redis_client(url: str, *, timeout_ms: int) -> redis.Redis:
    """A client that gives up after ``timeout_ms`` on connect and on every reply, without the
    retries redis-py does by default (each would add another timeout to the request)."""
    seconds = timeout_ms / 1000
    return redis.Redis.from_url(
        url,
        socket_timeout=seconds,
        socket_connect_timeout=seconds,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        decode_responses=True,
    )


class RedisLimiter(Limiter):
    def __init__(self, url: str, *, timeout_ms: int, prefix: str = "md"):
        self.prefix = prefix
        # The request path waits at most timeout_ms; the rollup and the usage pages read
        # larger replies off the request path and get a patient client of their own.
        self.client = redis_client(url, timeout_ms=timeout_ms)
        self.batch_client = redis_client(url, timeout_ms=BATCH_TIMEOUT_MS)
        self._hit = self.client.register_script((LUA_DIR / "hit.lua").read_text())
        self._give_back = self.client.register_script((LUA_DIR / "give_back.lua").read_text())
        self._drain = self.client.register_script((LUA_DIR / "drain.lua").read_text())
        self._discard = self.client.register_script((LUA_DIR / "discard.lua").read_text())
        self._publish = self.client.register_script(_PUBLISH_VERSION)

    def publish_version(self, account_id: int, version: int, *, ttl: int) -> None:
        try:
            self._publish(keys=[self._key(account_id, "ver")], args=[version, ttl])
        except RedisError as exc:
            raise LimiterUnavailable(f"{exc.__class__.__name__}: {exc}") from exc

    def _key(self, account_id: int, name: str) -> str:
        return f"{self.prefix}:{{acct:{account_id}}}:{name}"

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
        minute = usage_minute(wall, policy)
        limit = policy.quota_limit
        quota_ttl = int(policy.period_end_epoch - wall) + QUOTA_TTL_AFTER_PERIOD
        keys = [
            self._key(account_id, "rate"),
            self._key(account_id, f"q:{policy.period_key}"),
            self._key(account_id, f"u:{minute}"),
            self._key(account_id, "m"),
            self._key(account_id, "ver"),
        ]
        args: list[EncodableT] = [
            cost,
            policy.interval_us,
            policy.burst,
            -1 if limit is None else limit,
            -1 if seed is None else seed,
            max(60, quota_ttl),
            usage_field("u", key_id, endpoint),
            usage_field("r", key_id, endpoint),
            minute,
            -1 if now is None else int(now * MICROS),
            -1 if version is None else version,
        ]
        try:
            code, remaining, reset_us, retry_us, used, now_us = self._hit(keys=keys, args=args)
        except RedisError as exc:
            raise LimiterUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
        if code == _CLOCK_SKEW:
            raise LimiterUnavailable(
                f"this host's clock is {abs(now_us / MICROS - wall):.0f} s off Redis's; "
                "usage would land in the wrong minute (run NTP)"
            )
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
        )
        if decision.outcome == Outcome.QUOTA_EXCEEDED:
            decision.retry_after = max(0.0, policy.period_end_epoch - decision.now)
        return decision

    def give_back(self, decision: Decision, *, now: float | None = None) -> bool:
        account_id = decision.account_id
        keys = [
            self._key(account_id, "rate"),
            self._key(account_id, f"q:{decision.policy.period_key}"),
            self._key(account_id, f"u:{decision.minute}"),
        ]
        args: list[EncodableT] = [
            decision.cost,
            decision.policy.interval_us,
            usage_field("u", decision.key_id, decision.endpoint),
            usage_field("r", decision.key_id, decision.endpoint),
            -1 if now is None else int(now * MICROS),
        ]
        try:
            return bool(self._give_back(keys=keys, args=args))
        except RedisError as exc:
            raise LimiterUnavailable(f"{exc.__class__.__name__}: {exc}") from exc

    def pending_buckets(self, *, before: int) -> list[Bucket]:
        # SCAN walks the whole keyspace: fine once a minute for the rollup; on a very large
        # shared Redis, give the metering keys a database of their own.
        index_keys = list(
            self.batch_client.scan_iter(match=f"{self.prefix}:{{acct:*}}:m", count=1000)
        )
        if not index_keys:
            return []
        pipe = self.batch_client.pipeline(transaction=False)
        for key in index_keys:
            pipe.smembers(key)
        buckets: list[Bucket] = []
        for key, minutes in zip(index_keys, pipe.execute(), strict=True):
            account_id = int(key[key.index("{acct:") + 6 : key.index("}")])
            buckets.extend(
                Bucket(account_id=account_id, minute=int(minute))
                for minute in minutes
                if int(minute) < before
            )
        return sorted(buckets)

    def drain(self, buckets: list[Bucket]) -> dict[Bucket, list[UsageCount]]:
        if not buckets:
            return {}
        pipe = self.batch_client.pipeline(transaction=False)
        for bucket in buckets:
            self._drain(
                keys=[
                    self._key(bucket.account_id, f"u:{bucket.minute}"),
                    self._key(bucket.account_id, f"d:{bucket.minute}"),
                ],
                client=pipe,
            )
        results = pipe.execute()
        return {
            bucket: parse_usage_fields(_pairs(flat))
            for bucket, flat in zip(buckets, results, strict=True)
        }

    def discard(self, buckets: list[Bucket]) -> None:
        if not buckets:
            return
        pipe = self.batch_client.pipeline(transaction=False)
        for bucket in buckets:
            self._discard(
                keys=[
                    self._key(bucket.account_id, f"d:{bucket.minute}"),
                    self._key(bucket.account_id, "m"),
                    self._key(bucket.account_id, f"u:{bucket.minute}"),
                ],
                args=[bucket.minute],
                client=pipe,
            )
        pipe.execute()

    def live_usage(self, account_id: int) -> dict[int, list[UsageCount]]:
        try:
            minutes = sorted(int(m) for m in self.batch_client.smembers(self._key(account_id, "m")))
            if not minutes:
                return {}
            # One MULTI/EXEC: a minute drained between reading its live and its sealed hash
            # would otherwise be read twice or not at all.
            pipe = self.batch_client.pipeline(transaction=True)
            for minute in minutes:
                pipe.hgetall(self._key(account_id, f"u:{minute}"))
                pipe.hgetall(self._key(account_id, f"d:{minute}"))
            replies = pipe.execute()
        except RedisError as exc:
            raise LimiterUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
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
        try:
            value = self.batch_client.get(self._key(account_id, f"q:{policy.period_key}"))
        except RedisError as exc:
            raise LimiterUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
        return None if value is None else int(value)

    def close(self) -> None:
        self.client.close()
        self.batch_client.close()

    def reset(self) -> None:
        keys = list(self.batch_client.scan_iter(match=f"{self.prefix}:{{acct:*", count=1000))
        for start in range(0, len(keys), 500):
            self.batch_client.delete(*keys[start : start + 500])


def _pairs(flat: list[str] | dict[str, str]) -> dict[str, int]:
    """HGETALL through EVAL arrives as a flat [field, value, ...] list."""
    if isinstance(flat, dict):
        return {name: int(value) for name, value in flat.items()}
    return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}
