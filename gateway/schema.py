"""The operator's live endpoints in the API's OpenAPI document (``/api/schema/``, shown at
``/api/docs/``), beside the built-in ones.

drf-spectacular documents DRF views; the gateway's proxy is one plain async view for every
endpoint, so this postprocessing hook (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``) adds
one operation per live endpoint from the database: its path and method, cost (and maximum),
scope and the public tiers that include it, path parameters, and the problem answers the
gateway can give. Read when the schema is generated, so the docs follow imports and edits.
"""

from typing import Any

from django.db import DatabaseError

from gateway.forms import statuses_text
from gateway.models import Endpoint
from gateway.paths import parse_template
from portal.api.schema import allowed_tier_names

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PROBLEMS = {
    "400": "A path parameter that could leave the declared path ('..', an encoded slash...).",
    "401": "No key, or a malformed, unknown, expired or revoked key.",
    "403": "The tier does not include this endpoint's scope, or the account is suspended.",
    "413": "The body is larger than the service accepts.",
    "429": "Over the rate limit or the quota; wait for Retry-After.",
    "502": "The operator's service could not be reached; nothing was billed.",
    "503": "The metering backend did not answer; nothing was billed.",
    "504": "The operator's service did not answer in time; nothing was billed.",
}


def pricing_sentence(endpoint: Endpoint, tiers: list[str] | None) -> str:
    billed = statuses_text(endpoint.billable_statuses)
    if endpoint.variable_cost:
        price = (
            f"**Cost:** what the service reports, from 0 to {endpoint.max_cost} units "
            f"({endpoint.cost} when it reports nothing), per call answered {billed}; "
            f"{endpoint.max_cost} units are reserved while the call runs."
        )
    elif endpoint.cost:
        unit = "unit" if endpoint.cost == 1 else "units"
        price = f"**Cost:** {endpoint.cost} {unit} per call answered {billed}; others are free."
    else:
        price = "**Cost:** free (0 units); it still needs a key."
    if not endpoint.scope:
        return f"{price} **Tiers:** every tier may call it."
    if tiers is None:
        who = f"tiers whose scopes include `{endpoint.scope}`"
    else:
        who = ", ".join(tiers) or f"no public tier includes `{endpoint.scope}` at the moment"
    return f"{price} **Scope:** `{endpoint.scope}`. **Tiers:** {who}."


def endpoint_operation(endpoint: Endpoint, tiers: list[str] | None) -> dict[str, Any]:
    problem = {"$ref": "#/components/schemas/Problem"}
    operation: dict[str, Any] = {
        "operationId": f"{endpoint.upstream.name}_{endpoint.operation_id}".replace("-", "_"),
        "summary": endpoint.summary or endpoint.operation_id,
        "description": pricing_sentence(endpoint, tiers),
        "tags": [endpoint.upstream.name],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in parse_template(endpoint.public_path).params
        ],
        "security": [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}],
        "responses": {
            "200": {"description": "The operator's service's answer, passed on as it streams."},
            **{
                code: {
                    "description": text,
                    "content": {"application/problem+json": {"schema": problem}},
                }
                for code, text in PROBLEMS.items()
            },
        },
        "x-cost-units": endpoint.cost,
        "x-max-cost-units": endpoint.max_cost,
        "x-scope": endpoint.scope or None,
    }
    if tiers is not None and endpoint.scope:
        operation["x-allowed-tiers"] = tiers
    if endpoint.method in BODY_METHODS:
        operation["requestBody"] = {
            "required": False,
            "content": {"*/*": {"schema": {}}},
            "description": "Passed on to the operator's service as it is.",
        }
    return operation


def operator_endpoints_hook(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the live endpoints to ``paths``."""
    try:
        endpoints = list(Endpoint.objects.live().select_related("upstream"))
    except DatabaseError:
        # Generated without a database (``manage.py spectacular`` in a build step).
        return result
    paths = result.setdefault("paths", {})
    tiers_by_scope: dict[str, list[str] | None] = {}
    for endpoint in endpoints:
        if endpoint.scope and endpoint.scope not in tiers_by_scope:
            tiers_by_scope[endpoint.scope] = allowed_tier_names(endpoint.scope)
        tiers = tiers_by_scope.get(endpoint.scope) if endpoint.scope else None
        path = "/v1" + endpoint.public_path
        # A built-in endpoint answers first at its path: never documented over.
        if endpoint.method.lower() in paths.get(path, {}):
            continue
        paths.setdefault(path, {})[endpoint.method.lower()] = endpoint_operation(endpoint, tiers)
    return result
