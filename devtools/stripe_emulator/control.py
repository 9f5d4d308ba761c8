"""Test controls, shared by the in-process `Emulator` handle and the `/_emulator/` JSON API
(for an emulator run as a subprocess, and for browser tests)."""

from __future__ import annotations

import json

from .billing import clock_advance, usage_total
from .errors import StripeError
from .forms import decode
from .resources.portal import default_configuration_save
from .state import State

# ----- operations --------------------------------------------------------------------------------


def reset(state: State) -> dict:
    state.reset()
    return {"reset": True}


def advance_clock(state: State, seconds: int | None = None, to: int | None = None) -> dict:
    with state.store.lock:
        now = state.store.now()
        target = int(to) if to is not None else now + int(seconds or 0)
        if target < now:
            raise ValueError("the emulator clock only moves forward")
        clock_advance(state, target)
        state.persist()
        return {"now": state.store.now()}


def set_card_declines(state: State, customer_id: str, decline: bool = True) -> dict:
    with state.store.lock:
        state.store.get(customer_id, "customer")
        if decline:
            state.store.declining_customers.add(customer_id)
        else:
            state.store.declining_customers.discard(customer_id)
        state.persist()
    return {"customer": customer_id, "decline": decline}


def save_portal_defaults(state: State, params: dict) -> dict:
    """Stand-in for saving the customer portal settings in the Dashboard: creates (or updates)
    the default configuration that sessions without `configuration` use. `params` take the
    shape of `POST /v1/billing_portal/configurations` (features, business_profile,
    default_return_url, name)."""
    with state.store.lock:
        configuration = default_configuration_save(state, params)
        state.persist()
        return state.store.render(configuration)


def request_count(state: State, path_prefix: str = "", method: str | None = None) -> int:
    with state.store.lock:
        return sum(
            count
            for key, count in state.store.request_counts.items()
            if key.split(" ", 1)[1].startswith(path_prefix)
            and (method is None or key.split(" ", 1)[0] == method.upper())
        )


def meter_event_total(
    state: State, customer_id: str, meter: str, start: int | None = None, end: int | None = None
) -> int:
    """Accepted usage for a customer on a meter (id or event name), over all time by default."""
    with state.store.lock:
        meter_id = meter
        if not meter.startswith("mtr_"):
            found = [m for m in state.store.all("billing.meter") if m["event_name"] == meter]
            if not found:
                return 0
            meter_id = found[0]["id"]
        return usage_total(state, customer_id, meter_id, start or 0, end or 2**62)


def stats(state: State) -> dict:
    with state.store.lock:
        store = state.store
        return {
            "now": store.now(),
            "clock_offset": store.clock.offset,
            "requests": dict(store.request_counts),
            "meter_events": len(store.meter_events),
            "meter_event_errors": list(store.meter_event_errors),
            "thin_events": len(store.all("v2.core.event")),
            "draft_invoices": [i["id"] for i in store.all("invoice") if i["status"] == "draft"],
            "state_file": str(state.state_file) if state.state_file else None,
            "pending_webhooks": len(state.webhooks.pending),
            "webhook_mode": state.webhooks.mode,
            "webhook_attempts": list(state.webhooks.attempt_log),
            "declining_customers": sorted(store.declining_customers),
            "faults": [f.describe() for f in state.faults.rules],
        }


# ----- HTTP --------------------------------------------------------------------------------------


def _body(raw: bytes, query: str) -> dict:
    if raw.strip().startswith(b"{"):
        return json.loads(raw)
    return decode(raw.decode() or query)


_FAULT_FIELDS = (
    "path_prefix",
    "status",
    "count",
    "fraction",
    "delay",
    "apply",
    "retry_after",
    "should_retry",
    "method",
    "seed",
)


def _fault_options(body: dict) -> dict:
    options = {k: body[k] for k in _FAULT_FIELDS if k in body}
    for key in ("status", "count", "retry_after", "seed"):
        if isinstance(options.get(key), str):
            options[key] = int(options[key])
    for key in ("fraction", "delay"):
        if isinstance(options.get(key), str):
            options[key] = float(options[key])
    for key in ("apply", "should_retry"):
        if isinstance(options.get(key), str):
            options[key] = options[key].lower() == "true"
    return options


def dispatch(state: State, method: str, path: str, query: str, raw: bytes, handler):
    """Serve one `/_emulator/...` request; returns (status, JSON body)."""
    try:
        body = _body(raw, query)
        route = (method, path)
        if route == ("POST", "/_emulator/reset"):
            return 200, reset(state)
        if route == ("GET", "/_emulator/stats"):
            return 200, stats(state)
        if route == ("GET", "/_emulator/clock"):
            return 200, {"now": state.store.now()}
        if route == ("POST", "/_emulator/clock/advance"):
            seconds = body.get("seconds")
            to = body.get("to")
            return 200, advance_clock(
                state,
                int(seconds) if seconds is not None else None,
                int(to) if to is not None else None,
            )
        if route == ("POST", "/_emulator/faults"):
            fault = state.faults.add(**_fault_options(body))
            return 200, fault.describe()
        if route == ("DELETE", "/_emulator/faults"):
            state.faults.clear()
            return 200, {"faults": []}
        if (
            method == "POST"
            and path.startswith("/_emulator/customers/")
            and path.endswith("/declines")
        ):
            customer_id = path.split("/")[3]
            decline = str(body.get("decline", "true")).lower() in ("true", "1")
            return 200, set_card_declines(state, customer_id, decline)
        if route == ("GET", "/_emulator/requests"):
            prefix = body.get("path_prefix", "")
            return 200, {"path_prefix": prefix, "count": request_count(state, prefix)}
        if route == ("GET", "/_emulator/meter_event_total"):
            return 200, {"total": meter_event_total(state, body["customer"], body["meter"])}
        if route == ("POST", "/_emulator/billing_portal/default"):
            return 200, save_portal_defaults(state, body)
        if route == ("POST", "/_emulator/webhooks/mode"):
            state.webhooks.set_mode(body["mode"])
            return 200, {"mode": state.webhooks.mode}
        if route == ("POST", "/_emulator/webhooks/wait"):
            return 200, {"idle": state.webhooks.wait_idle(float(body.get("timeout", 5)))}
        return 404, {
            "error": {
                "type": "invalid_request_error",
                "message": f"Unknown emulator control: {method} {path}",
            }
        }
    except StripeError as error:
        return error.status, error.body()
    except (KeyError, ValueError, TypeError) as error:
        return 400, {"error": {"type": "invalid_request_error", "message": str(error)}}
