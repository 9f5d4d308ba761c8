"""GET /v1/usage: the calling key's account usage — this period by default, live minutes
included; a past period or a range, per minute, hour or day, narrowed to a key and an endpoint
through query parameters; a bad parameter is a 400 problem naming it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from metering.hotpath import policy_for
from metering.limiter import get_limiter
from portal.keys.cache import key_cache
from portal.models import AccountPeriod
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
        "current": True,
        "tier": account.tier.name,
        "switches": [],
    }
    assert body["range"] == {"start": body["period"]["start"], "end": body["period"]["end"]}
    assert (body["granularity"], body["filters"]) == ("day", {"key": None, "endpoint": None})
    assert body["quota_since"] == body["period"]["start"]
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
    assert body["keys"] == [
        {
            "key_prefix": key.prefix,
            "name": "ci",
            "units": 43,
            "requests": 12,
            "refused": 0,
            "failed": 0,
        }
    ]
    # The day series: the period's first day starts at its start (noon), not at midnight.
    assert body["series"][0]["start"] == body["period"]["start"]
    assert body["series"][0]["units"] == 40
    assert sum(point["units"] for point in body["series"]) == 43
    assert [p["current"] for p in body["periods"]] == [True]


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


# --- Query parameters --------------------------------------------------------------------------


def query(client, caller, **params):
    return client.get("/v1/usage", params, HTTP_AUTHORIZATION=f"Bearer {caller.plaintext}")


def test_an_hourly_range_has_every_hour_with_refused_and_failed_calls(client, key):
    account = key.account
    day = (timezone.now() - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    UsageRollupFactory(
        account=account, api_key=key, minute=day + timedelta(hours=3, minutes=7), units=6
    )
    UsageRollupFactory(
        account=account,
        api_key=key,
        endpoint="compute",
        minute=day + timedelta(hours=3, minutes=59),
        units=0,
        requests=0,
        refused_rate=4,
        refused_quota=2,
        refused_cap=1,
        errors=3,
    )
    UsageRollupFactory(account=account, api_key=key, minute=day + timedelta(hours=5), units=9)

    response = query(client, key, **{"from": day.date().isoformat(), "granularity": "hour"})
    to = day + timedelta(hours=6)
    body = query(
        client, key, **{"from": day.isoformat(), "to": to.isoformat(), "granularity": "hour"}
    ).json()

    assert response.status_code == 200
    assert body["period"] is None and body["daily"] is None and body["included_units"] is None
    assert [point["units"] for point in body["series"]] == [0, 0, 0, 6, 0, 9]
    assert body["series"][3] == {
        "start": (day + timedelta(hours=3)).isoformat().replace("+00:00", "Z"),
        "end": (day + timedelta(hours=4)).isoformat().replace("+00:00", "Z"),
        "units": 6,
        "requests": 1,
        "refused_rate_limit": 4,
        "refused_quota": 2,
        "refused_spend_cap": 1,
        "failed": 3,
    }
    assert (body["units"], body["refused_rate_limit"], body["failed"]) == (15, 4, 3)
    assert {e["endpoint"]: (e["refused"], e["failed"]) for e in body["endpoints"]} == {
        "lookup": (0, 0),
        "compute": (7, 3),
    }


def test_key_and_endpoint_narrow_the_series(client, key):
    other = ApiKeyFactory(account=key.account, name="other")
    now = timezone.now() - timedelta(minutes=10)
    UsageRollupFactory(account=key.account, api_key=key, minute=now, units=3)
    UsageRollupFactory(account=key.account, api_key=other, minute=now, units=40)
    UsageRollupFactory(account=key.account, api_key=other, endpoint="compute", minute=now, units=5)

    body = query(client, key, key=other.prefix, endpoint="lookup").json()

    assert body["filters"] == {"key": other.prefix, "endpoint": "lookup"}
    assert (body["units"], sum(p["units"] for p in body["series"])) == (40, 40)
    # The quota is still the account's.
    assert body["remaining_included_units"] == 100 - 48


def test_a_past_period_by_previous_or_by_its_start_date(client, key):
    account = key.account
    past_start = account.period_start - timedelta(days=30)
    AccountPeriod.objects.create(account=account, start=past_start, end=account.period_start)
    AccountPeriod.objects.create(
        account=account, start=account.period_start, end=account.period_end, tier=account.tier
    )
    UsageRollupFactory(account=account, api_key=key, minute=past_start + timedelta(days=2), units=8)

    previous = query(client, key, period="previous").json()
    by_date = query(client, key, period=past_start.date().isoformat()).json()

    assert previous == by_date
    assert previous["period"]["current"] is False
    assert previous["period"]["start"] == past_start.isoformat().replace("+00:00", "Z")
    assert (previous["units"], len(previous["daily"])) == (8, 31)
    assert [p["current"] for p in previous["periods"]] == [True, False]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"granularity": "week"}, "granularity"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-03T10:00:00"}, "from"),  # no offset
        ({"from": "2026-11-03", "to": "2026-11-01"}, "to"),
        ({"to": "2026-11-03"}, "from"),
        ({"period": "current", "from": "2026-11-01"}, "period"),
        ({"period": "2001-01-01"}, "period"),
        ({"period": "previous"}, "period"),  # none yet
        ({"period": "soon"}, "period"),
        ({"granularity": "minute"}, "granularity"),  # a whole period of minutes is too long
        ({"from": "2020-01-01", "to": "2026-01-01", "granularity": "hour"}, "granularity"),
        ({"key": "mdk_test_nosuchkey"}, "key"),
        ({"endpoint": "<script>"}, "endpoint"),
    ],
)
def test_a_bad_parameter_is_a_400_problem_naming_it(client, key, params, field):
    response = query(client, key, **params)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/problems/invalid-request/")
    assert [error["field"] for error in body["errors"]] == [field]
    assert body["detail"].startswith(f"{field}: ")
    # Still a metered call: the headers are there, and nothing was spent.
    assert "RateLimit" in response


def test_another_accounts_key_prefix_is_refused_not_shown(client, key):
    foreign = ApiKeyFactory(account=AccountFactory(tier=key.account.tier))
    UsageRollupFactory(account=foreign.account, api_key=foreign, minute=timezone.now(), units=77)

    response = query(client, key, key=foreign.prefix)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "key"
    assert "77" not in response.content.decode()


def test_the_schema_documents_the_parameters(client, db):
    document = client.get("/api/schema/?format=json").json()

    parameters = {p["name"]: p for p in document["paths"]["/v1/usage"]["get"]["parameters"]}
    assert {"period", "from", "to", "granularity", "key", "endpoint"} <= parameters.keys()
    assert parameters["granularity"]["schema"]["enum"] == ["minute", "hour", "day"]
    assert "ISO 8601" in parameters["from"]["description"]
    assert "400" in document["paths"]["/v1/usage"]["get"]["responses"]
