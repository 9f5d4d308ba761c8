"""Which keys may call which endpoint: TierScopePermission (scopes and suspension)."""

import pytest

from portal.models import Account
from portal.signals import account_changed_send
from tests.factories import TierFactory

COMPUTE_BODY = {"values": [1, 2, 3]}


def post_compute(client, headers):
    return client.post("/v1/compute", COMPUTE_BODY, content_type="application/json", **headers)


@pytest.mark.django_db
def test_a_tier_without_the_scope_gets_403_naming_the_tiers_that_have_it(client, bearer, paid_tier):
    TierFactory(slug="enterprise", name="Enterprise", scopes=["basic", "compute", "bulk"])
    TierFactory(slug="secret", name="Secret deal", scopes=["compute"], is_public=False)

    response = post_compute(client, bearer)

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/problems/scope-not-allowed/")
    assert body["scope"] == "compute"
    assert body["allowed_tiers"] == ["Pro", "Enterprise"]
    assert "Pro, Enterprise" in body["detail"]


@pytest.mark.django_db
def test_a_tier_with_the_scope_may_call(client, paid_bearer):
    assert post_compute(client, paid_bearer).status_code == 200


@pytest.mark.django_db
def test_refused_calls_are_not_counted(client, bearer, paid_tier):
    for _ in range(3):
        assert post_compute(client, bearer).status_code == 403

    assert client.get("/v1/usage", **bearer).json()["units"] == 0


@pytest.mark.django_db
def test_upgrading_opens_the_endpoint_within_the_cache_invalidation(
    client, bearer, account, paid_tier
):
    assert post_compute(client, bearer).status_code == 403

    Account.objects.filter(pk=account.pk).update(tier=paid_tier)
    account_changed_send(account.pk)

    assert post_compute(client, bearer).status_code == 200


@pytest.mark.django_db
def test_a_suspended_account_gets_403_with_the_reason(client, bearer, account):
    Account.objects.filter(pk=account.pk).update(
        status=Account.Status.SUSPENDED, suspended_reason="Scraping other customers' data"
    )
    account_changed_send(account.pk)

    response = client.get("/v1/lookup?q=3", **bearer)

    assert response.status_code == 403
    body = response.json()
    assert body["type"].endswith("/problems/account-suspended/")
    assert body["reason"] == "Scraping other customers' data"


@pytest.mark.django_db
def test_suspension_applies_to_free_endpoints_too(client, bearer, account):
    Account.objects.filter(pk=account.pk).update(status=Account.Status.SUSPENDED)
    account_changed_send(account.pk)

    assert client.get("/v1/me", **bearer).status_code == 403
