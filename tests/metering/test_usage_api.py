"""GET /v1/usage: the calling key's account usage this period, live minutes included."""

from datetime import timedelta

import pytest
from django.utils import timezone

from metering.hotpath import policy_for
from metering.limiter import get_limiter
from portal.keys.cache import key_cache
from tests.factories import (
    AccountFactory,
    ApiKeyFactory,
    PaidTierFactory,
    TierFactory,
    UsageRollupFactory,
)

pytestmark = pytest.mark.django_db


def get(client, key, path="/v1/usage"):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")


@pytest.fixture
def key():
    # Noon three days ago: a 30-day period from there touches 31 dates, and today is the 4th.
    start = (timezone.now() - timedelta(days=3)).replace(hour=12, minute=0, second=0, microsecond=0)
    account = AccountFactory(
        tier=TierFactory(included_units=100, rate_limit_per_minute=600),
        period_start=start,
        period_end=start + timedelta(days=30),
    )
    return ApiKeyFactory(account=account, name="ci")


def test_usage_reports_the_period_with_every_day_endpoint_and_key(client, key):
    account = key.account
    UsageRollupFactory(
        account=account,
        api_key=key,
        minute=account.period_start.replace(second=0),
        units=40,
        requests=8,
    )
    for _ in range(3):
        assert get(client, key, "/v1/lookup?q=42").status_code == 200

    response = get(client, key)

    assert response.status_code == 200
    body = response.json()
    assert body["period"] == {
        "start": account.period_start.isoformat().replace("+00:00", "Z"),
        "end": account.period_end.isoformat().replace("+00:00", "Z"),
    }
    # The rolled-up 40 units and the three 1-unit lookups; /v1/usage itself costs nothing.
    assert body["units"] == 43
    assert body["requests"] == 12
    assert body["included_units"] == 100
    assert body["remaining_included_units"] == 57
    assert body["overage_units"] == 0
    assert body["overage_policy"] == "block"
    assert body["overage_cap_units"] is None
    assert len(body["daily"]) == 31
    assert body["daily"][0] == {
        "date": account.period_start.date().isoformat(),
        "units": 40,
        "requests": 8,
        "cumulative_units": 40,
    }
    assert body["daily"][3]["units"] == 3
    assert body["daily"][-1]["cumulative_units"] == 43
    assert {e["endpoint"]: e["units"] for e in body["endpoints"]} == {
        "lookup": 43,
        "usage": 0,
    }
    assert body["keys"] == [{"key_prefix": key.prefix, "name": "ci", "units": 43, "requests": 12}]


def test_usage_costs_no_units_and_carries_the_rate_limit_headers(client, key):
    response = get(client, key)

    assert response.status_code == 200
    # Nothing spent: 600 of the minute's units and all 100 of the period's are left, and the
    # period, with fewer left, is the binding limit the headers lead with.
    assert response["RateLimit"].startswith('"period";r=100;')
    assert '"minute";r=600;' in response["RateLimit"]
    assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("100", "100")
    assert get_limiter().quota_used(key.account_id, _policy(key)) == 0


def test_usage_shows_overage_and_the_spend_cap_of_a_bill_tier(client):
    account = AccountFactory(tier=PaidTierFactory(included_units=10, spend_cap_cents=None))
    key = ApiKeyFactory(account=account)
    UsageRollupFactory(account=account, minute=timezone.now(), units=25)

    body = get(client, key).json()

    assert (body["units"], body["overage_units"], body["overage_policy"]) == (25, 15, "bill")


def test_usage_of_another_account_is_never_shown(client, key):
    other = ApiKeyFactory(account=AccountFactory(tier=key.account.tier))
    UsageRollupFactory(account=other.account, minute=timezone.now(), units=999)

    body = get(client, key).json()

    # Only this key's own (free) call to /v1/usage.
    assert body["units"] == 0
    assert [k["key_prefix"] for k in body["keys"]] == [key.prefix]


def test_usage_without_a_key_is_a_401_problem(client, db):
    response = client.get("/v1/usage")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def _policy(key):
    return policy_for(key_cache.resolve(key.plaintext))
