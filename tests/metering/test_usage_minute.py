"""A period (or a subscription) rarely starts on a whole minute, but usage is counted per minute.
Usage admitted under a period is counted from the first whole minute of it, so the minute a
period starts in holds only the previous period's usage, and both periods add up exactly."""

from datetime import UTC, datetime, timedelta

import pytest

from metering.limiter import get_limiter
from metering.limiter.base import Outcome, Policy
from metering.selectors import period_units
from metering.services import usage_rollup
from tests.factories import AccountFactory, ApiKeyFactory

pytestmark = pytest.mark.django_db

# A subscription that started 20 s into a minute, an hour ago.
BOUNDARY = datetime.now(UTC).replace(second=20, microsecond=0) - timedelta(hours=1)


def policy(start: datetime, end: datetime) -> Policy:
    return Policy(
        rate_per_minute=10_000,
        burst=10_000,
        quota=10_000,
        overage_policy="bill",
        overage_cap=None,
        period_start=start,
        period_end=end,
    )


def test_the_minute_a_period_starts_in_belongs_to_the_previous_period():
    key = ApiKeyFactory(account=AccountFactory())
    before = policy(BOUNDARY - timedelta(days=30), BOUNDARY)
    after = policy(BOUNDARY, BOUNDARY + timedelta(days=30))
    limiter = get_limiter()

    def spend(at: datetime, under: Policy, cost: int):
        decision = limiter.hit(
            account_id=key.account_id,
            key_id=key.pk,
            endpoint="lookup",
            cost=cost,
            policy=under,
            seed=0,
            now=at.timestamp(),
        )
        assert decision.outcome == Outcome.ADMITTED
        return decision

    # 5 s before and 10 s after the start, inside the same wall-clock minute.
    old = spend(BOUNDARY - timedelta(seconds=5), before, cost=3)
    new = spend(BOUNDARY + timedelta(seconds=10), after, cost=7)
    usage_rollup()

    assert old.minute == int(BOUNDARY.replace(second=0).timestamp())
    assert new.minute == old.minute + 60
    assert period_units(key.account_id, BOUNDARY - timedelta(days=30), BOUNDARY) == 3
    assert period_units(key.account_id, BOUNDARY, BOUNDARY + timedelta(days=30)) == 7
