"""Who may call an operator's endpoint: a valid key (401 otherwise), an active account, a tier
that includes the endpoint's scope (403 otherwise). Refused calls never reach the upstream."""

import httpx
from django.utils import timezone

from portal.services import api_key_revoke
from tests.factories import AccountFactory, ApiKeyFactory, EndpointFactory, TierFactory
from tests.gateway.servers import usage_of


def test_no_key_unknown_key_and_revoked_key_get_401(meterdesk, upstream, upstream_app, api_key):
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")
    revoked = ApiKeyFactory(account=api_key.account)
    api_key_revoke(key=revoked, actor=None)
    outsider_key = api_key.plaintext[:-4] + "abcd"

    answers = {
        "missing": httpx.get(f"{meterdesk.url}/v1/echo/hi"),
        "unknown": httpx.get(
            f"{meterdesk.url}/v1/echo/hi", headers={"Authorization": f"Bearer {outsider_key}"}
        ),
        "revoked": httpx.get(
            f"{meterdesk.url}/v1/echo/hi", headers={"X-API-Key": revoked.plaintext}
        ),
        "malformed": httpx.get(f"{meterdesk.url}/v1/echo/hi", headers={"X-API-Key": "nope"}),
    }

    for reason, response in answers.items():
        assert response.status_code == 401, reason
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == 'Bearer realm="api"'
        assert response.json()["reason"] == reason
    assert upstream_app.received == []
    assert usage_of(api_key.account_id, "catalog/echo") == (0, 0)


def test_tier_without_the_scope_gets_403_naming_the_tiers_that_have_it(
    caller, upstream, upstream_app, api_key
):
    TierFactory(slug="studio", name="Studio", scopes=["basic", "compute"], is_public=True)
    EndpointFactory(
        upstream=upstream, operation_id="words", public_path="/echo/{word}", scope="compute"
    )

    response = caller.get("/v1/echo/hi")

    assert response.status_code == 403
    body = response.json()
    assert body["type"].endswith("/problems/scope-not-allowed/")
    assert body["allowed_tiers"] == ["Studio"]
    assert upstream_app.received == []


def test_suspended_account_gets_403(meterdesk, upstream, upstream_app, tier):
    account = AccountFactory(tier=tier, status="suspended", suspended_reason="Unpaid invoices")
    key = ApiKeyFactory(account=account)
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")

    response = httpx.get(f"{meterdesk.url}/v1/echo/hi", headers={"X-API-Key": key.plaintext})

    assert response.status_code == 403
    assert response.json()["reason"] == "Unpaid invoices"
    assert upstream_app.received == []


def test_archived_endpoint_is_a_404_like_any_unknown_path(caller, upstream, upstream_app):
    EndpointFactory(
        upstream=upstream,
        operation_id="echo",
        public_path="/echo/{word}",
        archived_at=timezone.now(),
    )

    response = caller.get("/v1/echo/hi")

    assert response.status_code == 404
    assert response.json()["type"].endswith("/problems/not-found/")
    assert upstream_app.received == []


def test_other_method_on_a_live_path_is_405_with_allow(caller, upstream):
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")

    response = caller.delete("/v1/echo/hi")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_built_in_endpoints_still_answer_first(caller, upstream):
    EndpointFactory(
        upstream=upstream, operation_id="me", public_path="/me", upstream_path="/echo/me"
    )

    response = caller.get("/v1/me")

    assert response.status_code == 200
    assert "account" in response.json() or "tier" in response.json()
