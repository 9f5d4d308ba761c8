"""GET /v1/me: the calling key, its account, tier and limits (free, any tier)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import ApiKeyFactory, QuotaCreditFactory


@pytest.mark.django_db
def test_me_describes_key_account_tier_and_limits(client, account):
    expires = timezone.now() + timedelta(days=3)
    key = ApiKeyFactory(account=account, expires_at=expires)
    QuotaCreditFactory(account=account, units=50)
    tier = account.tier

    body = client.get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {key.plaintext}").json()

    assert body["account"] == {"id": account.pk, "status": "active"}
    assert body["tier"] == {"slug": tier.slug, "name": tier.name, "scopes": sorted(tier.scopes)}
    assert body["key"]["prefix"] == key.prefix
    assert body["key"]["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M"))
    limits = body["limits"]
    assert limits["rate_limit_per_minute"] == tier.rate_limit_per_minute
    assert limits["burst"] == tier.effective_burst
    assert limits["quota_units"] == tier.included_units + 50
    assert limits["overage_policy"] == "block"
    assert limits["overage_cap_units"] is None
    start, end = account.current_period()
    assert limits["period_start"].startswith(start.strftime("%Y-%m-%dT%H:%M"))
    assert limits["period_end"].startswith(end.strftime("%Y-%m-%dT%H:%M"))


@pytest.mark.django_db
def test_me_costs_nothing(client, bearer):
    for _ in range(3):
        assert client.get("/v1/me", **bearer).status_code == 200

    assert client.get("/v1/usage", **bearer).json()["units"] == 0


@pytest.mark.django_db
def test_me_never_shows_the_secret(client, api_key, bearer):
    text = client.get("/v1/me", **bearer).content.decode()

    assert api_key.plaintext not in text
    assert api_key.secret_hash not in text
