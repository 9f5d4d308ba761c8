"""The in-process backend of the embedded mode: exact within one process, shared by its threads.

Counters live in this process's memory, so only this process can admit, count and roll them up.
``manage.py serve`` therefore runs the rollup job in the web process (Celery beat in a thread,
eager tasks), and ``metering.limiter.get_limiter`` hands a forked child a fresh instance rather
than a copy of its parent's counters, which would be rolled up twice.

One lock guards everything: each operation is a handful of dictionary updates, far shorter than
the request around it, so the lock is never where a request waits.
"""

import itertools
import threading
import time
from collections.abc import Callable

from metering.limiter.base import (
    ERRORS,
    MICROS,
    REFUSED_RATE,
    REQUESTS,
    TOKEN_SECONDS,
    UNITS,
    Bucket,
    Decision,
    Limiter,
    Outcome,
    Policy,
    Reservation,
    Settlement,
    SettleResult,
    UsageCount,
    parse_usage_fields,
    quota_refusal_kind,
    usage_field,
    usage_minute,
)


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


class LocalLimiter(Limiter):
    def __init__(self, *, clock_us: Callable[[], int] = _wall_clock_us):
        self._clock_us = clock_us
        self._lock = threading.Lock()
        # account id -> theoretical arrival time (µs) of the GCRA limiter.
        self._tat: dict[int, int] = {}
        # (account id, period start) -> units counted this period.
        self._quota: dict[tuple[int, int], int] = {}
        # (account id, minute) -> counter name -> value; "live" takes hits, "drained" is sealed.
        self._live: dict[tuple[int, int], dict[str, int]] = {}
        self._drained: dict[tuple[int, int], dict[str, int]] = {}
        # (account id, minute) -> (when they are forgotten, on this limiter's clock; token of
        # each admitted call -> None, or once settled (units given back, as an error)): what
        # hit.lua and give_back.lua keep in Redis, forgotten as they are, TOKEN_SECONDS after
        # the minute began by the clock the hit was decided with.
        self._tokens: dict[tuple[int, int], tuple[int, dict[str, tuple[int, bool] | None]]] = {}
        self._next_token = itertools.count(1)
        # The earliest such deadline: a hit looks for tokens to forget only when some are due.
        self._tokens_due: int | None = None

    def _now_us(self, now: float | None) -> int:
        return self._clock_us() if now is None else int(now * MICROS)

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
        interval = policy.interval_us
        burst_span = policy.burst * interval
        limit = policy.quota_limit
        quota_key = (account_id, policy.period_key)
        with self._lock:
            now_us = self._now_us(now)
            decision = Decision(
                outcome=Outcome.ADMITTED,
                account_id=account_id,
                key_id=key_id,
                endpoint=endpoint,
                cost=cost,
                policy=policy,
                now=now_us / MICROS,
                minute=usage_minute(now_us / MICROS, policy),
            )
            tat = max(self._tat.get(account_id, now_us), now_us)
            used = self._quota.get(quota_key)
            if used is None:
                if seed is None:
                    decision.outcome = Outcome.NEEDS_SEED
                    return decision
                used = self._quota[quota_key] = seed
            decision.quota_used = used
            decision.rate_remaining = (now_us + burst_span - tat) // interval
            decision.rate_reset = (tat - now_us) / MICROS
            bucket = (account_id, decision.minute)
            if cost > 0 and limit is not None and used + cost > limit:
                decision.outcome = Outcome.QUOTA_EXCEEDED
                decision.retry_after = max(0.0, policy.period_end_epoch - now_us / MICROS)
                self._count(bucket, quota_refusal_kind(policy), key_id, endpoint, 1)
                return decision
            new_tat = tat + cost * interval
            allow_at = new_tat - burst_span
            if allow_at > now_us:
                decision.outcome = Outcome.RATE_LIMITED
                decision.retry_after = (allow_at - now_us) / MICROS
                self._count(bucket, REFUSED_RATE, key_id, endpoint, 1)
                return decision
            if cost > 0:
                self._tat[account_id] = new_tat
                used = self._quota[quota_key] = used + cost
            self._count(bucket, UNITS, key_id, endpoint, cost)
            self._count(bucket, REQUESTS, key_id, endpoint, 1)
            decision.token = self._record_token(bucket, now_us)
            decision.quota_used = used
            decision.rate_remaining = (now_us + burst_span - new_tat) // interval
            decision.rate_reset = (new_tat - now_us) / MICROS
            return decision

    def _count(
        self, bucket: tuple[int, int], kind: str, key_id: int, endpoint: str, amount: int
    ) -> None:
        counters = self._live.setdefault(bucket, {})
        name = usage_field(kind, key_id, endpoint)
        counters[name] = counters.get(name, 0) + amount

    def _record_token(self, bucket: tuple[int, int], now_us: int) -> str:
        """Name an admitted call until it is settled; forget the tokens that are due."""
        clock = self._clock_us()
        due = self._tokens_due
        if due is not None and due <= clock:
            for key in [key for key, (until, _) in self._tokens.items() if until <= clock]:
                del self._tokens[key]
            due = min((until for until, _ in self._tokens.values()), default=None)
        until = clock + (bucket[1] + TOKEN_SECONDS) * MICROS - now_us
        entry = self._tokens.get(bucket)
        if entry is None:
            entry = self._tokens[bucket] = (until, {})
        self._tokens_due = entry[0] if due is None else min(due, entry[0])
        token = f"{next(self._next_token):x}"
        entry[1][token] = None
        return token

    def settle(
        self,
        reservation: Reservation,
        *,
        units: int,
        error: bool = False,
        now: float | None = None,
    ) -> SettleResult:
        """give_back.lua's steps, in the same order (see its header)."""
        amount = reservation.cost - (0 if error else min(max(units, 0), reservation.cost))
        account_id, key_id, endpoint = (
            reservation.account_id,
            reservation.key_id,
            reservation.endpoint,
        )
        bucket = (account_id, reservation.minute)
        with self._lock:
            now_us = self._now_us(now)
            until, tokens = self._tokens.get(bucket, (0, {}))
            if until <= self._clock_us():
                tokens = {}
            if reservation.token not in tokens:
                return SettleResult(Settlement.LATE, 0, False)
            settled = tokens[reservation.token]
            if settled is not None:
                return SettleResult(Settlement.REPEATED, settled[0], settled[1])
            counters = self._live.get(bucket)
            if counters is None:
                return SettleResult(Settlement.LATE, 0, False)
            tokens[reservation.token] = (amount, error)
            if error:
                self._count(bucket, REQUESTS, key_id, endpoint, -1)
                self._count(bucket, ERRORS, key_id, endpoint, 1)
            if amount > 0:
                self._count(bucket, UNITS, key_id, endpoint, -amount)
                quota_key = (account_id, reservation.period_key)
                if quota_key in self._quota:
                    self._quota[quota_key] -= amount
                tat = self._tat.get(account_id)
                if tat is not None:
                    new_tat = tat - amount * reservation.interval_us
                    if new_tat <= now_us:
                        del self._tat[account_id]
                    else:
                        self._tat[account_id] = new_tat
            return SettleResult(Settlement.SETTLED, amount, error)

    def pending_buckets(self, *, before: int) -> list[Bucket]:
        with self._lock:
            keys = set(self._live) | set(self._drained)
        return sorted(
            Bucket(account_id=account_id, minute=minute)
            for account_id, minute in keys
            if minute < before
        )

    def drain(self, buckets: list[Bucket]) -> dict[Bucket, list[UsageCount]]:
        drained: dict[Bucket, list[UsageCount]] = {}
        with self._lock:
            for bucket in buckets:
                key = (bucket.account_id, bucket.minute)
                if key not in self._drained and key in self._live:
                    self._drained[key] = self._live.pop(key)
                drained[bucket] = parse_usage_fields(self._drained.get(key, {}))
        return drained

    def discard(self, buckets: list[Bucket]) -> None:
        with self._lock:
            for bucket in buckets:
                self._drained.pop((bucket.account_id, bucket.minute), None)

    def live_usage(self, account_id: int) -> dict[int, list[UsageCount]]:
        by_minute: dict[int, dict[str, int]] = {}
        with self._lock:
            for source in (self._live, self._drained):
                for (owner, minute), counters in source.items():
                    if owner != account_id:
                        continue
                    merged = by_minute.setdefault(minute, {})
                    for name, value in counters.items():
                        merged[name] = merged.get(name, 0) + value
        return {minute: parse_usage_fields(fields) for minute, fields in by_minute.items()}

    def quota_used(self, account_id: int, policy: Policy) -> int | None:
        with self._lock:
            return self._quota.get((account_id, policy.period_key))

    def reset(self) -> None:
        with self._lock:
            self._tat.clear()
            self._quota.clear()
            self._live.clear()
            self._drained.clear()
            self._tokens.clear()
            self._tokens_due = None
