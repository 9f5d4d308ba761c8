"""Billing meters, meter events (identifier dedup) and meter event summaries.

Validation follows Stripe's split: malformed requests (a value that is not a whole number, a
timestamp outside 35 days back / 5 minutes ahead, a reused identifier) are refused at once with a
400; what needs the account's data is validated asynchronously: "Stripe processes meter events
asynchronously" (Record usage for billing with the API,
https://docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api). Such an event is
accepted (200), never billed nor counted in event summaries, listed in
`State.store.meter_event_errors`, and reported by a thin event (resources/v2.py):

- no active meter has the event name: `v1.billing.meter.no_meter_found` (code `no_meter`), or
  `v1.billing.meter.error_report_triggered` with code `archived_meter` when the meter that has it
  is deactivated;
- the payload lacks the meter's customer key: `error_report_triggered`, code
  `meter_event_no_customer_defined` ("Customer mapping key stripe_customer_id not found in
  payload.", the example of The Event object, https://docs.stripe.com/api/v2/core/events/object);
- the customer does not exist (never did, or was deleted): `error_report_triggered`, code
  `meter_event_customer_not_found`.

A customer without a subscription is no error: Stripe records usage before a subscription exists
("You can record usage for a customer even before creating a subscription for them", Manage your
usage-based billing setup). Each invalid event is reported at once in its own report
(error_count 1, its identifier as the sample), where Stripe batches a validation window.
"""

from __future__ import annotations

import re
import uuid

from ..billing import usage_total
from ..errors import StripeError, invalid_parameter
from ..params import ANY, choice, require, to_int, validate
from ..router import route
from ..state import State
from .customers import LIST_PARAMS
from .v2 import iso, thin_event_create

IDENTIFIER_WINDOW = 24 * 3600
PAST_LIMIT = 35 * 24 * 3600
FUTURE_LIMIT = 5 * 60
_WHOLE_NUMBER = re.compile(r"^\d+$")


@route("POST", "/v1/billing/meters")
def meter_create(state: State, params: dict) -> dict:
    validate(
        params,
        {
            "customer_mapping": {"event_payload_key": None, "type": None},
            "default_aggregation": {"formula": None},
            "display_name": None,
            "event_name": None,
            "event_time_window": None,
            "value_settings": {"event_payload_key": None},
        },
    )
    require(params, "display_name", "event_name", "default_aggregation.formula")
    formula = choice(
        params["default_aggregation"]["formula"],
        "default_aggregation[formula]",
        ("sum", "count", "last"),
    )
    store = state.store
    for meter in store.all("billing.meter"):
        if meter["event_name"] == params["event_name"] and meter["status"] == "active":
            raise StripeError(
                f"An active meter with event_name `{params['event_name']}` already exists.",
                param="event_name",
            )
    mapping = params.get("customer_mapping") or {}
    now = store.now()
    return store.add(
        {
            "id": store.new_id("mtr"),
            "object": "billing.meter",
            "created": now,
            "customer_mapping": {
                "event_payload_key": mapping.get("event_payload_key", "stripe_customer_id"),
                "type": choice(mapping.get("type", "by_id"), "customer_mapping[type]", ("by_id",)),
            },
            "default_aggregation": {"formula": formula},
            "display_name": params["display_name"],
            "event_name": params["event_name"],
            "event_time_window": params.get("event_time_window") or None,
            "livemode": False,
            "status": "active",
            "status_transitions": {"deactivated_at": None},
            "updated": now,
            "value_settings": {
                "event_payload_key": (params.get("value_settings") or {}).get(
                    "event_payload_key", "value"
                )
            },
        }
    )


@route("GET", "/v1/billing/meters/{id}")
def meter_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "billing.meter")


@route("POST", "/v1/billing/meters/{id}")
def meter_update(state: State, params: dict, id: str) -> dict:
    validate(params, {"display_name": None})
    meter = state.store.get(id, "billing.meter")
    if params.get("display_name"):
        meter.update(display_name=params["display_name"], updated=state.store.now())
    return meter


@route("GET", "/v1/billing/meters")
def meter_list(state: State, params: dict) -> dict:
    validate(params, {**LIST_PARAMS, "status": None})
    items = state.store.all("billing.meter")
    if params.get("status"):
        items = [m for m in items if m["status"] == params["status"]]
    return state.store.page(items, params, "/v1/billing/meters", params.get("expand"))


def _set_status(state: State, id: str, status: str) -> dict:
    meter = state.store.get(id, "billing.meter")
    now = state.store.now()
    meter.update(
        status=status,
        updated=now,
        status_transitions={"deactivated_at": now if status == "inactive" else None},
    )
    return meter


@route("POST", "/v1/billing/meters/{id}/deactivate")
def meter_deactivate(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return _set_status(state, id, "inactive")


@route("POST", "/v1/billing/meters/{id}/reactivate")
def meter_reactivate(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return _set_status(state, id, "active")


@route("POST", "/v1/billing/meter_events")
def meter_event_create(state: State, params: dict) -> dict:
    validate(params, {"event_name": None, "identifier": None, "payload": ANY, "timestamp": None})
    require(params, "event_name", "payload")
    store = state.store
    now = store.now()
    payload = params["payload"]
    if not isinstance(payload, dict):
        raise invalid_parameter("payload", "Invalid object: payload")
    timestamp = to_int(params.get("timestamp", now), "timestamp")
    if timestamp < now - PAST_LIMIT:
        raise invalid_parameter(
            "timestamp",
            "Timestamp must be within the past 35 calendar days.",
            code="timestamp_too_far_in_past",
        )
    if timestamp > now + FUTURE_LIMIT:
        raise invalid_parameter(
            "timestamp",
            "Timestamp must not be more than 5 minutes in the future.",
            code="timestamp_in_future",
        )
    meters = [m for m in store.all("billing.meter") if m["event_name"] == params["event_name"]]
    meter = next((m for m in meters if m["status"] == "active"), None)
    archived = next(iter(meters), None) if meter is None else None
    settings = meter or archived
    value_key = settings["value_settings"]["event_payload_key"] if settings else "value"
    customer_key = (
        settings["customer_mapping"]["event_payload_key"] if settings else "stripe_customer_id"
    )
    raw_value = payload.get(value_key)
    if raw_value is None:
        raise StripeError(
            f"Missing required param: payload[{value_key}].",
            code="parameter_missing",
            param=f"payload[{value_key}]",
            replayable=False,
        )
    if not _WHOLE_NUMBER.match(str(raw_value)):
        raise invalid_parameter(
            f"payload[{value_key}]",
            f"Invalid value: {raw_value}. The value must be a whole number.",
            code="meter_event_invalid_value",
        )
    # "We'll enforce uniqueness within a rolling 24 hour period"; the timestamp "must be within
    # the past 35 calendar days or up to 5 minutes in the future" (Create a billing meter event,
    # https://docs.stripe.com/api/billing/meter-event/create).
    identifier = params.get("identifier") or str(uuid.uuid4())
    seen_at = store.identifiers.get(identifier)
    if seen_at is not None and now - seen_at < IDENTIFIER_WINDOW:
        raise StripeError(
            f"An event already exists with identifier {identifier}.",
            code="duplicate_meter_event",
            param="identifier",
        )
    store.identifiers[identifier] = now
    customer_id = payload.get(customer_key)
    event = {
        "identifier": identifier,
        "event_name": params["event_name"],
        "meter": meter["id"] if meter else (archived["id"] if archived else None),
        "customer": customer_id,
        "value": int(raw_value),
        "timestamp": timestamp,
        "created": now,
    }
    if meter is None and archived is None:
        _report(state, event, "no_meter", f"No active meter with event name {event['event_name']}.")
    elif archived is not None:  # set only when no active meter has the name
        _report(
            state,
            event,
            "archived_meter",
            f"The meter {archived['id']} with event name {event['event_name']} is deactivated.",
        )
    elif customer_id is None:
        _report(
            state,
            event,
            "meter_event_no_customer_defined",
            f"Customer mapping key {customer_key} not found in payload.",
        )
    elif not isinstance(customer_id, str) or store.find(customer_id, "customer") is None:
        _report(
            state, event, "meter_event_customer_not_found", f"Customer {customer_id} not found."
        )
    else:
        store.meter_events.append(event)
    return {
        "object": "billing.meter_event",
        "created": now,
        "event_name": params["event_name"],
        "identifier": identifier,
        "livemode": False,
        "payload": {k: str(v) for k, v in payload.items()},
        "timestamp": timestamp,
    }


@route("GET", "/v1/billing/meters/{id}/event_summaries")
def meter_event_summaries(state: State, params: dict, id: str) -> dict:
    validate(
        params,
        {
            **LIST_PARAMS,
            "customer": None,
            "start_time": None,
            "end_time": None,
            "value_grouping_window": None,
        },
    )
    require(params, "customer", "start_time", "end_time")
    # Times "must be aligned with minute boundaries"; only accepted events are aggregated, so an
    # event that failed the asynchronous validation is never counted (List billing meter event
    # summaries, https://docs.stripe.com/api/billing/meter-event-summary/list).
    meter = state.store.get(id, "billing.meter")
    start = to_int(params["start_time"], "start_time")
    end = to_int(params["end_time"], "end_time")
    for name, value in (("start_time", start), ("end_time", end)):
        if value % 60:
            raise invalid_parameter(name, f"{name} must be aligned to minute boundaries.")
    if end <= start:
        raise invalid_parameter("end_time", "end_time must be after start_time.")
    window = params.get("value_grouping_window")
    step = {None: end - start, "hour": 3600, "day": 86400}[
        choice(window, "value_grouping_window", ("hour", "day")) if window else None
    ]
    summaries = []
    for bucket_start in range(start, end, step):
        bucket_end = min(bucket_start + step, end)
        summaries.append(
            {
                "id": f"mtrusg_{meter['id'][4:]}_{bucket_start}",
                "object": "billing.meter_event_summary",
                "aggregated_value": float(
                    usage_total(state, params["customer"], meter["id"], bucket_start, bucket_end)
                ),
                "end_time": bucket_end,
                "livemode": False,
                "meter": meter["id"],
                "start_time": bucket_start,
                "_seq": bucket_start,
            }
        )
    summaries.reverse()  # newest first, like every Stripe list
    return state.store.page(summaries, params, f"/v1/billing/meters/{id}/event_summaries")


def _report(state: State, event: dict, code: str, message: str) -> None:
    """The asynchronous validation failed: record the error and send its thin event."""
    state.store.meter_event_errors.append({**event, "code": code, "error_message": message})
    moment = iso(event["created"])
    data = {
        "developer_message_summary": "There is 1 invalid event",
        "reason": {
            "error_count": 1,
            "error_types": [
                {
                    "code": code,
                    "error_count": 1,
                    "sample_errors": [
                        {"error_message": message, "request": {"identifier": event["identifier"]}}
                    ],
                }
            ],
        },
        "validation_end": iso(event["created"] + 1),
        "validation_start": moment,
    }
    if code == "no_meter":
        thin_event_create(state, "v1.billing.meter.no_meter_found", data, None)
        return
    meter_id = event["meter"]
    thin_event_create(
        state,
        "v1.billing.meter.error_report_triggered",
        data,
        {"id": meter_id, "type": "billing.meter", "url": f"/v1/billing/meters/{meter_id}"},
    )
