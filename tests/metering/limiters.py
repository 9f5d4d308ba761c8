"""Both limiter backends for the variable-cost, refusal and async tests, with a policy and a
fixed clock: the in-process one, and Redis (REDIS_URL's database) under a prefix of the test's
own, emptied around it; and many clients calling at once, for the topologies' exactness tests."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from metering.limiter.base import Outcome, Policy
from metering.limiter.local import LocalLimiter
from metering.limiter.redis import RedisLimiter
from tests.services import redis_url

NOW = 1_900_000_000.0
MINUTE = int(NOW // 60 * 60)


@pytest.fixture(params=["local", "redis"])
def backend(request):
    if request.param == "local":
        yield LocalLimiter()
        return
    limiter = RedisLimiter(redis_url(), timeout_ms=2000, prefix=f"mdvc-{uuid.uuid4().hex[:8]}")
    limiter.reset()
    yield limiter
    limiter.reset()
    limiter.close()


def make_policy(
    *,
    rate: int = 600,
    burst: int | None = None,
    quota: int = 1_000_000,
    overage_policy: str = "block",
    cap: int | None = None,
) -> Policy:
    start = datetime.fromtimestamp(NOW, UTC) - timedelta(days=3)
    return Policy(
        rate_per_minute=rate,
        burst=burst or rate,
        quota=quota,
        overage_policy=overage_policy,
        overage_cap=cap,
        period_start=start,
        period_end=start + timedelta(days=30),
    )


def hit(limiter, policy, *, cost=1, now=NOW, account_id=1, key_id=1, endpoint="lookup"):
    return limiter.hit(
        account_id=account_id,
        key_id=key_id,
        endpoint=endpoint,
        cost=cost,
        policy=policy,
        seed=0,
        now=now,
    )


def counts(limiter, *, account_id=1, minute=MINUTE):
    """The one (key, endpoint) count of the account's minute, as a tuple of every counter."""
    (count,) = limiter.live_usage(account_id)[minute]
    return (
        count.units,
        count.requests,
        count.refused_rate,
        count.refused_quota,
        count.refused_cap,
        count.errors,
    )


def admitted_at_once(limiter, policy, account_ids, *, clients: int, calls: int) -> dict[int, int]:
    """``clients`` threads let go together, each making ``calls`` calls of cost 1 spread over
    ``account_ids`` (each client starting at another): how many the limiter admitted for each
    account."""
    start = threading.Barrier(clients)
    admitted = dict.fromkeys(account_ids, 0)
    lock = threading.Lock()

    def client(index: int) -> None:
        start.wait()
        for call in range(calls):
            account = account_ids[(index + call) % len(account_ids)]
            decision = limiter.hit(
                account_id=account, key_id=1, endpoint="lookup", cost=1, policy=policy, seed=0
            )
            if decision.outcome == Outcome.ADMITTED:
                with lock:
                    admitted[account] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return admitted
