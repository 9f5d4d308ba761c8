"""/api/docs/ lists the operator's live endpoints beside /v1/me and /v1/usage, with their cost
and the tiers that may call them (the schema it renders: /api/schema/)."""

import pytest
from django.utils import timezone

from tests.factories import EndpointFactory, TierFactory, UpstreamFactory

pytestmark = pytest.mark.django_db


def schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def test_live_endpoints_are_documented_with_cost_and_tiers(client):
    TierFactory(slug="studio", name="Studio", scopes=["compute"], is_public=True)
    upstream = UpstreamFactory(name="catalog")
    EndpointFactory(
        upstream=upstream,
        operation_id="echo",
        public_path="/echo/{word}",
        cost=2,
        max_cost=2,
        summary="The word back",
    )
    EndpointFactory(
        upstream=upstream,
        operation_id="countWords",
        method="POST",
        public_path="/words",
        cost=1,
        max_cost=20,
        scope="compute",
    )
    EndpointFactory(
        upstream=upstream, operation_id="old", public_path="/old", archived_at=timezone.now()
    )

    paths = schema(client)["paths"]

    assert {"/v1/me", "/v1/usage", "/v1/echo/{word}", "/v1/words"} <= set(paths)
    assert "/v1/old" not in paths
    echo = paths["/v1/echo/{word}"]["get"]
    assert echo["summary"] == "The word back"
    assert echo["x-cost-units"] == 2
    assert "2 units per call answered 200-299" in echo["description"]
    assert "every tier" in echo["description"]
    assert echo["parameters"][0]["name"] == "word"
    assert echo["responses"]["504"]["content"]["application/problem+json"]
    words = paths["/v1/words"]["post"]
    assert (words["x-cost-units"], words["x-max-cost-units"]) == (1, 20)
    assert words["x-allowed-tiers"] == ["Studio"]
    assert "from 0 to 20 units" in words["description"]
    assert "Studio" in words["description"]
    assert words["tags"] == ["catalog"]


def test_docs_page_loads_the_schema_with_them(client):
    EndpointFactory(operation_id="echo", public_path="/echo/{word}")

    assert client.get("/api/docs/").status_code == 200
    assert "/v1/echo/{word}" in schema(client)["paths"]
