"""API v2 thin events and event destinations: how Stripe delivers
`v1.billing.meter.error_report_triggered` and `v1.billing.meter.no_meter_found`.

These are thin events: "This is a list of all public thin events we currently send for /v1 and
/v2 resources ... The payload of thin events is unversioned. During processing, you must fetch
the versioned event from the API" (Types of events v2,
https://docs.stripe.com/api/v2/core/events/event-types). They never reach a v1 webhook endpoint
(`POST /v1/webhook_endpoints`); Stripe sends them to an event destination created with
`event_payload: "thin"` (Event Destinations, https://docs.stripe.com/api/v2/core/event-destinations).
The delivered body is the notification (id, type, created, related_object), signed like any
webhook (`Stripe-Signature`); the receiver verifies it with
`StripeClient.parse_event_notification(body, signature, secret)` and reads the event's `data`
with `GET /v2/core/events/{id}` (`notification.fetch_event()`). `GET /v2/core/events` lists them
too, for a client that polls instead.

v2 conventions followed: JSON request bodies, ISO 8601 timestamps, lists as
`{"data", "next_page_url", "previous_page_url"}`.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

from ..errors import invalid_parameter, missing_parameter
from ..params import ANY, choice, merge_metadata, require, to_int, validate
from ..router import route
from ..state import State

THIN_EVENT_TYPES = (
    "v1.billing.meter.error_report_triggered",
    "v1.billing.meter.no_meter_found",
    "v2.core.event_destination.ping",
)
_ALPHABET = string.ascii_letters + string.digits


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _v2_id(prefix: str) -> str:
    return f"{prefix}_test_" + "".join(secrets.choice(_ALPHABET) for _ in range(48))


def thin_event_create(
    state: State,
    event_type: str,
    data: dict | None,
    related_object: dict | None,
    only: str | None = None,
) -> dict:
    """Record a v2 event and send its thin notification to the matching event destinations."""
    store = state.store
    request = state.current_request or {}
    event = store.add(
        {
            "id": _v2_id("evt"),
            "object": "v2.core.event",
            "changes": None,
            "context": None,
            "created": iso(store.now()),
            "data": data,
            "livemode": False,
            "reason": {
                "request": {
                    "id": request.get("id"),
                    "idempotency_key": request.get("idempotency_key") or "",
                },
                "type": "request",
            }
            if request.get("id")
            else None,
            "related_object": related_object,
            "type": event_type,
        }
    )
    state.webhooks.emit_thin(event, only)
    return event


def _v2_page(items: list[dict], params: dict, url: str, render) -> dict:
    limit = to_int(params.get("limit", 20), "limit")
    if not 1 <= limit <= 100:
        raise invalid_parameter("limit", "limit must be between 1 and 100.")
    offset = to_int(params.get("page", 0), "page")
    chosen = items[offset : offset + limit]
    more = offset + limit < len(items)
    return {
        "data": [render(item) for item in chosen],
        "next_page_url": f"{url}?limit={limit}&page={offset + limit}" if more else None,
        "previous_page_url": f"{url}?limit={limit}&page={max(0, offset - limit)}"
        if offset
        else None,
    }


# ----- events --------------------------------------------------------------------------------


@route("GET", "/v2/core/events/{id}")
def v2_event_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "v2.core.event")


@route("GET", "/v2/core/events")
def v2_event_list(state: State, params: dict) -> dict:
    validate(
        params,
        {
            "created": ANY,
            "limit": None,
            "object_id": None,
            "page": None,
            "types": [None],
        },
    )
    items = state.store.all("v2.core.event")
    if params.get("object_id"):
        items = [e for e in items if (e["related_object"] or {}).get("id") == params["object_id"]]
    if params.get("types"):
        items = [e for e in items if e["type"] in params["types"]]
    return _v2_page(items, params, "/v2/core/events", state.store.render)


# ----- event destinations ----------------------------------------------------------------------


def _render_destination(state: State, destination: dict, include=()) -> dict:
    rendered = state.store.render(destination)
    rendered["webhook_endpoint"] = {
        "signing_secret": destination["_secret"]
        if "webhook_endpoint.signing_secret" in include
        else None,
        "url": destination["_url"] if "webhook_endpoint.url" in include else None,
    }
    return rendered


@route("POST", "/v2/core/event_destinations")
def event_destination_create(state: State, params: dict) -> dict:
    validate(
        params,
        {
            "description": None,
            "enabled_events": [None],
            "event_payload": None,
            "events_from": [None],
            "include": [None],
            "metadata": ANY,
            "name": None,
            "snapshot_api_version": None,
            "type": None,
            "webhook_endpoint": {"url": None},
            "amazon_eventbridge": ANY,
            "azure_event_grid": ANY,
        },
    )
    require(params, "name", "type", "event_payload", "enabled_events")
    payload = choice(params["event_payload"], "event_payload", ("snapshot", "thin"))
    # Only webhook endpoints are emulated (no cloud event buses on this machine).
    choice(params["type"], "type", ("webhook_endpoint",))
    url = (params.get("webhook_endpoint") or {}).get("url")
    if not url:
        raise missing_parameter("webhook_endpoint[url]")
    events = list(params["enabled_events"])
    if payload == "thin":
        for index, event_type in enumerate(events):
            if event_type not in THIN_EVENT_TYPES:
                raise invalid_parameter(
                    f"enabled_events[{index}]",
                    f"`{event_type}` is not a thin event type this account can receive.",
                )
    store = state.store
    now = iso(store.now())
    destination = store.add(
        {
            "id": _v2_id("ed"),
            "object": "v2.core.event_destination",
            "amazon_eventbridge": None,
            "azure_event_grid": None,
            "created": now,
            "description": params.get("description") or "",
            "enabled_events": events,
            "event_payload": payload,
            "events_from": list(params.get("events_from") or ["@self"]),
            "livemode": False,
            "metadata": merge_metadata({}, params.get("metadata")),
            "name": params["name"],
            "snapshot_api_version": params.get("snapshot_api_version")
            if payload == "snapshot"
            else None,
            "status": "enabled",
            "status_details": None,
            "type": "webhook_endpoint",
            "updated": now,
            "webhook_endpoint": {"signing_secret": None, "url": None},
            "_secret": "whsec_" + secrets.token_hex(16),
            "_url": url,
        }
    )
    return _render_destination(state, destination, params.get("include") or ())


@route("GET", "/v2/core/event_destinations/{id}")
def event_destination_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {"include": [None]})
    destination = state.store.get(id, "v2.core.event_destination")
    return _render_destination(state, destination, params.get("include") or ())


@route("GET", "/v2/core/event_destinations")
def event_destination_list(state: State, params: dict) -> dict:
    validate(params, {"include": [None], "limit": None, "page": None})
    include = params.get("include") or ()
    return _v2_page(
        state.store.all("v2.core.event_destination"),
        params,
        "/v2/core/event_destinations",
        lambda d: _render_destination(state, d, include),
    )


@route("DELETE", "/v2/core/event_destinations/{id}")
def event_destination_delete(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    state.store.get(id, "v2.core.event_destination")
    state.store.remove(id)
    return {"id": id, "object": "v2.core.event_destination", "deleted": True}


def _set_status(state: State, id: str, status: str) -> dict:
    destination = state.store.get(id, "v2.core.event_destination")
    destination.update(status=status, updated=iso(state.store.now()))
    return _render_destination(state, destination)


@route("POST", "/v2/core/event_destinations/{id}/disable")
def event_destination_disable(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return _set_status(state, id, "disabled")


@route("POST", "/v2/core/event_destinations/{id}/enable")
def event_destination_enable(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return _set_status(state, id, "enabled")


@route("POST", "/v2/core/event_destinations/{id}/ping")
def event_destination_ping(state: State, params: dict, id: str) -> dict:
    """Send a `v2.core.event_destination.ping` thin event to this destination."""
    validate(params, {})
    destination = state.store.get(id, "v2.core.event_destination")
    return thin_event_create(
        state,
        "v2.core.event_destination.ping",
        None,
        {
            "id": destination["id"],
            "type": "v2.core.event_destination",
            "url": f"/v2/core/event_destinations/{destination['id']}",
        },
        only=destination["id"],
    )
