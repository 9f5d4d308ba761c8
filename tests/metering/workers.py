"""Code the concurrency tests run in other processes (no Django: spawned children import only
this module and the limiter)."""

from datetime import UTC, datetime, timedelta

from metering.limiter.base import Policy
from metering.limiter.redis import RedisLimiter


def policy(*, rate_per_minute: int, burst: int, quota: int, overage_policy: str = "block"):
    # Every process must name the same period (it keys the quota counter), as every web
    # process does when it reads the account's anchored period.
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    return Policy(
        rate_per_minute=rate_per_minute,
        burst=burst,
        quota=quota,
        overage_policy=overage_policy,
        overage_cap=None,
        period_start=start,
        period_end=start + timedelta(days=30),
    )


def hammer_redis(url, prefix, policy_fields, calls, start, results):
    """Wait for every process to be ready, then hit the same account ``calls`` times."""
    limiter = RedisLimiter(url, timeout_ms=2000, prefix=prefix)
    limiter_policy = policy(**policy_fields)
    limiter.client.ping()
    start.wait()
    admitted = 0
    for _ in range(calls):
        decision = limiter.hit(
            account_id=1, key_id=1, endpoint="lookup", cost=1, policy=limiter_policy, seed=0
        )
        admitted += decision.counted
    results.put(admitted)
