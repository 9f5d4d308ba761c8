"""The OpenAPI schema (/api/schema/) and the docs page (/api/docs/)."""

import json
import re

import pytest
from django.db import DatabaseError

from billing.selectors import tier_default
from tests.factories import TierFactory


def schema(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.django_db
def test_schema_documents_every_endpoint_with_the_key_schemes(client):
    document = schema(client)

    assert set(document["paths"]) >= {"/v1/lookup", "/v1/compute", "/v1/me", "/v1/usage"}
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyBearer"] == {
        **schemes["ApiKeyBearer"],
        "type": "http",
        "scheme": "bearer",
    }
    assert schemes["ApiKeyHeader"]["in"] == "header"
    assert schemes["ApiKeyHeader"]["name"] == "X-API-Key"
    # Either header is enough (two alternatives, not both at once).
    assert document["paths"]["/v1/me"]["get"]["security"] == [
        {"ApiKeyBearer": []},
        {"ApiKeyHeader": []},
    ]


@pytest.mark.django_db
def test_each_endpoint_states_its_cost_scope_and_tiers_from_the_tier_table(client, paid_tier):
    tier_default()  # Free, scopes ["basic"]
    TierFactory(slug="enterprise", name="Enterprise", scopes=["basic", "compute"])

    paths = schema(client)["paths"]

    compute = paths["/v1/compute"]["post"]
    assert compute["x-cost-units"] == 5
    assert compute["x-scope"] == "compute"
    assert compute["x-allowed-tiers"] == ["Pro", "Enterprise"]
    assert "5 units" in compute["description"]
    assert "Pro, Enterprise" in compute["description"]
    lookup = paths["/v1/lookup"]["get"]
    assert lookup["x-cost-units"] == 1
    assert "Free" in lookup["x-allowed-tiers"]
    assert paths["/v1/me"]["get"]["x-cost-units"] == 0


@pytest.mark.django_db
def test_inputs_outputs_and_problem_answers_are_documented(client):
    document = schema(client)

    lookup = document["paths"]["/v1/lookup"]["get"]
    assert [p["name"] for p in lookup["parameters"]] == ["q"]
    assert lookup["responses"]["401"]["content"]["application/problem+json"]
    compute = document["paths"]["/v1/compute"]["post"]
    assert compute["requestBody"]["content"]["application/json"]
    assert {"200", "400", "401", "403", "413", "415", "429"} <= set(compute["responses"])
    assert "allowed_tiers" in document["components"]["schemas"]["Problem"]["properties"]


@pytest.mark.django_db
def test_schema_still_renders_when_the_tier_table_cannot_be_read(client, monkeypatch):
    def unreadable(scope):
        raise DatabaseError("no such table: billing_tier")

    monkeypatch.setattr("portal.api.schema.tier_names_allowing", unreadable)

    compute = schema(client)["paths"]["/v1/compute"]["post"]

    assert "x-allowed-tiers" not in compute
    assert "tiers whose scopes include `compute`" in compute["description"]


@pytest.mark.django_db
def test_docs_page_serves_swagger_ui_from_this_server(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    # Swagger UI's settings come with its start-up script, a file of its own (CSP: no inline).
    assert '"validatorUrl": null' in client.get("/api/docs/", {"script": ""}).content.decode()
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no asset from another host"
    assert "cdn" not in html.lower()
