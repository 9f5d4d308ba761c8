"""Events and webhook endpoints."""

from __future__ import annotations

import secrets

from ..params import ANY, merge_metadata, require, to_bool, validate
from ..router import route
from ..state import State
from ..store import API_VERSION
from .customers import LIST_PARAMS


@route("GET", "/v1/events/{id}")
def event_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "event")


@route("GET", "/v1/events")
def event_list(state: State, params: dict) -> dict:
    validate(params, {**LIST_PARAMS, "type": None, "types": [None], "delivery_success": None})
    items = state.store.all("event")
    if params.get("type"):
        pattern = params["type"]
        if pattern.endswith("*"):
            items = [e for e in items if e["type"].startswith(pattern[:-1])]
        else:
            items = [e for e in items if e["type"] == pattern]
    if params.get("types"):
        items = [e for e in items if e["type"] in params["types"]]
    return state.store.page(items, params, "/v1/events")


_ENDPOINT_FIELDS = {
    "api_version": None,
    "connect": None,
    "description": None,
    "enabled_events": [None],
    "metadata": ANY,
    "url": None,
}


@route("POST", "/v1/webhook_endpoints")
def endpoint_create(state: State, params: dict) -> dict:
    validate(params, _ENDPOINT_FIELDS)
    require(params, "url", "enabled_events")
    store = state.store
    secret = "whsec_" + secrets.token_hex(16)
    endpoint = store.add(
        {
            "id": store.new_id("we"),
            "object": "webhook_endpoint",
            "api_version": params.get("api_version") or API_VERSION,
            "application": None,
            "created": store.now(),
            "description": params.get("description") or None,
            "enabled_events": list(params["enabled_events"]),
            "livemode": False,
            "metadata": merge_metadata({}, params.get("metadata")),
            "status": "enabled",
            "url": params["url"],
            "_secret": secret,
        }
    )
    # The secret is shown once, in the create response only.
    return {**store.render(endpoint, params.get("expand")), "secret": secret}


@route("GET", "/v1/webhook_endpoints/{id}")
def endpoint_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "webhook_endpoint")


@route("POST", "/v1/webhook_endpoints/{id}")
def endpoint_update(state: State, params: dict, id: str) -> dict:
    validate(
        params,
        {
            "description": None,
            "disabled": None,
            "enabled_events": [None],
            "metadata": ANY,
            "url": None,
        },
    )
    endpoint = state.store.get(id, "webhook_endpoint")
    if "url" in params:
        endpoint["url"] = params["url"]
    if "enabled_events" in params:
        endpoint["enabled_events"] = list(params["enabled_events"] or [])
    if "description" in params:
        endpoint["description"] = params["description"] or None
    if "disabled" in params:
        disabled = to_bool(params["disabled"], "disabled")
        endpoint["status"] = "disabled" if disabled else "enabled"
    endpoint["metadata"] = merge_metadata(endpoint["metadata"], params.get("metadata"))
    return endpoint


@route("DELETE", "/v1/webhook_endpoints/{id}")
def endpoint_delete(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    state.store.get(id, "webhook_endpoint")
    state.store.remove(id)
    return {"id": id, "object": "webhook_endpoint", "deleted": True}


@route("GET", "/v1/webhook_endpoints")
def endpoint_list(state: State, params: dict) -> dict:
    validate(params, LIST_PARAMS)
    return state.store.page(state.store.all("webhook_endpoint"), params, "/v1/webhook_endpoints")
