"""Problems an upgrade solves say so in a sentence and carry the pricing page (issue 16).

The quota 429 used to start lower-case with the URL mid-sentence ("quota exceeded, upgrade at
http://…/pricing/ — …") and the scope 403 had no way out at all. Each detail is now a sentence
a client can show as it is, pointing at the ``upgrade_url`` member that holds the link.
"""

import pytest

from tests.factories import AccountFactory, ApiKeyFactory, TierFactory

pytestmark = pytest.mark.django_db

COMPUTE_BODY = {"values": [1, 2, 3]}


def assert_a_sentence_pointing_at_the_link(detail: str, *, ends_with: str) -> None:
    assert detail[0].isupper(), detail
    assert "http" not in detail, "the URL belongs in upgrade_url, not mid-sentence"
    assert detail.endswith(ends_with), detail


def bearer_of(tier) -> dict[str, str]:
    key = ApiKeyFactory(account=AccountFactory(tier=tier))
    return {"HTTP_AUTHORIZATION": f"Bearer {key.plaintext}"}


def test_a_quota_refusal_is_a_sentence_with_the_upgrade_link_beside_it(client, settings):
    headers = bearer_of(TierFactory(included_units=1, rate_limit_per_minute=600))
    assert client.get("/v1/lookup", {"q": "42"}, **headers).status_code == 200

    refused = client.get("/v1/lookup", {"q": "42"}, **headers)

    body = refused.json()
    assert refused.status_code == 429
    assert body["upgrade_url"] == f"{settings.SITE_URL}/pricing/"
    assert_a_sentence_pointing_at_the_link(
        body["detail"], ends_with="Upgrade your tier to keep calling before then: see upgrade_url."
    )
    assert body["detail"].startswith("This billing period's quota is used up: 1 of the 1 units")


def test_a_scope_refusal_links_to_the_tiers_that_include_the_endpoint(client, settings):
    TierFactory(slug="pro", name="Pro", scopes=["basic", "compute"])
    headers = bearer_of(TierFactory(name="Starter", scopes=["basic"]))

    refused = client.post("/v1/compute", COMPUTE_BODY, content_type="application/json", **headers)

    body = refused.json()
    assert refused.status_code == 403
    assert body["type"].endswith("/problems/scope-not-allowed/")
    assert body["upgrade_url"] == f"{settings.SITE_URL}/pricing/"
    assert body["allowed_tiers"] == ["Pro"]
    assert_a_sentence_pointing_at_the_link(
        body["detail"], ends_with="Upgrade your tier to call it: see upgrade_url."
    )
    assert "available on Pro." in body["detail"]


def test_a_scope_no_public_tier_includes_offers_no_upgrade(client):
    headers = bearer_of(TierFactory(name="Starter", scopes=["basic"]))

    body = client.post(
        "/v1/compute", COMPUTE_BODY, content_type="application/json", **headers
    ).json()

    assert body["allowed_tiers"] == []
    assert "upgrade_url" not in body
    assert body["detail"] == "The Starter tier does not include this endpoint."


def test_an_endpoint_above_the_burst_points_at_the_upgrade_link(client, settings):
    # /v1/compute costs 5 units; this tier spends at most 3 at once.
    headers = bearer_of(TierFactory(scopes=["basic", "compute"], rate_limit_per_minute=3))

    refused = client.post("/v1/compute", COMPUTE_BODY, content_type="application/json", **headers)

    body = refused.json()
    assert refused.status_code == 403
    assert body["upgrade_url"] == f"{settings.SITE_URL}/pricing/"
    assert_a_sentence_pointing_at_the_link(
        body["detail"],
        ends_with="Upgrade to a tier with a larger rate limit to call it: see upgrade_url.",
    )


def test_the_problem_pages_name_the_upgrade_link_member(client):
    for slug in ("quota-exceeded", "scope-not-allowed", "cost-above-burst"):
        page = client.get(f"/problems/{slug}/").content.decode()
        assert "upgrade_url" in page, slug
