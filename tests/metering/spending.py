"""Spending units the way API calls do: through the key's cached principal and the limiter."""

from metering.hotpath import policy_for
from metering.limiter import get_limiter
from metering.limiter.base import Decision, Outcome
from portal.keys.cache import key_cache


def spend(
    key, *, cost: int = 1, endpoint: str = "lookup", at: float | None = None, times: int = 1
) -> list[Decision]:
    """``times`` admitted calls of ``cost`` units with ``key`` at ``at`` (epoch seconds; None:
    now), the period's counter seeded empty. Returns their decisions."""
    policy = policy_for(key_cache.resolve(key.plaintext))
    limiter = get_limiter()
    decisions = []
    for _ in range(times):
        decision = limiter.hit(
            account_id=key.account_id,
            key_id=key.pk,
            endpoint=endpoint,
            cost=cost,
            policy=policy,
            seed=0,
            now=at,
        )
        assert decision.outcome == Outcome.ADMITTED
        decisions.append(decision)
    return decisions
