"""The in-process backend of the embedded mode: exact within one process, shared by its threads.

Counters live in this process's memory, so only this process can admit, count and roll them up.
``manage.py serve`` therefore runs the rollup job in the web process (Celery beat in a thread,
eager tasks), and ``metering.limiter.get_limiter`` hands a forked child a fresh instance rather
than a copy of its parent's counters, which would be rolled up twice.

One lock guards everything: each operation is a handful of dictionary updates, far shorter than
the request around it, so the lock is never where a request waits.
"""

import threading
import time
from collections.abc import Callable

from metering.limiter.base import (
    MICROS,
    Bucket,
    Decision,
    Limiter,
    Outcome,
    Policy,
    UsageCount,
    parse_usage_fields,
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
            if cost > 0 and limit is not None and used + cost > limit:
                decision.outcome = Outcome.QUOTA_EXCEEDED
                decision.retry_after = max(0.0, policy.period_end_epoch - now_us / MICROS)
                return decision
            new_tat = tat + cost * interval
            allow_at = new_tat - burst_span
            if allow_at > now_us:
                decision.outcome = Outcome.RATE_LIMITED
                decision.retry_after = (allow_at - now_us) / MICROS
                return decision
            if cost > 0:
                self._tat[account_id] = new_tat
                used = self._quota[quota_key] = used + cost
            counters = self._live.setdefault((account_id, decision.minute), {})
            units_field = usage_field("u", key_id, endpoint)
            requests_field = usage_field("r", key_id, endpoint)
            counters[units_field] = counters.get(units_field, 0) + cost
            counters[requests_field] = counters.get(requests_field, 0) + 1
            decision.quota_used = used
            decision.rate_remaining = (now_us + burst_span - new_tat) // interval
            decision.rate_reset = (new_tat - now_us) / MICROS
            return decision

    def give_back(self, decision: Decision, *, now: float | None = None) -> bool:
        cost = decision.cost
        with self._lock:
            counters = self._live.get((decision.account_id, decision.minute))
            if counters is None:
                return False
            units_field = usage_field("u", decision.key_id, decision.endpoint)
            requests_field = usage_field("r", decision.key_id, decision.endpoint)
            counters[units_field] = counters.get(units_field, 0) - cost
            counters[requests_field] = counters.get(requests_field, 0) - 1
            if cost > 0:
                quota_key = (decision.account_id, decision.policy.period_key)
                if quota_key in self._quota:
                    self._quota[quota_key] -= cost
                tat = self._tat.get(decision.account_id)
                if tat is not None:
                    new_tat = tat - cost * decision.policy.interval_us
                    if new_tat <= self._now_us(now):
                        del self._tat[decision.account_id]
                    else:
                        self._tat[decision.account_id] = new_tat
            return True

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
