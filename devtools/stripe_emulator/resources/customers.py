"""Customers and their card payment methods."""

from __future__ import annotations

import secrets

from ..billing import subscription_cancel
from ..errors import StripeError
from ..params import ANY, merge_metadata, validate
from ..router import route
from ..state import State

LIST_PARAMS = {
    "limit": None,
    "starting_after": None,
    "ending_before": None,
    "created": ANY,
}

_CUSTOMER_FIELDS = {
    "address": ANY,
    "description": None,
    "email": None,
    "invoice_prefix": None,
    "invoice_settings": {
        "custom_fields": ANY,
        "default_payment_method": None,
        "footer": None,
        "rendering_options": ANY,
    },
    "metadata": ANY,
    "name": None,
    "payment_method": None,
    "phone": None,
    "preferred_locales": [None],
    "shipping": ANY,
    "tax_exempt": None,
}

# Stripe's test tokens; `pm_card_chargeDeclined` switches card declines on for its customer.
_TEST_CARDS = {
    "pm_card_visa": ("visa", "4242"),
    "pm_card_mastercard": ("mastercard", "4444"),
    "pm_card_chargeDeclined": ("visa", "0002"),
}


def _nullable(value):
    return None if value in (None, "") else value


@route("POST", "/v1/customers")
def customer_create(state: State, params: dict) -> dict:
    validate(params, _CUSTOMER_FIELDS)
    store = state.store
    customer_id = store.new_id("cus", 14)
    settings = params.get("invoice_settings") or {}
    customer = store.add(
        {
            "id": customer_id,
            "object": "customer",
            "address": _nullable(params.get("address")),
            "balance": 0,
            "created": store.now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": _nullable(params.get("description")),
            "discount": None,
            "email": _nullable(params.get("email")),
            "invoice_prefix": params.get("invoice_prefix") or secrets.token_hex(4).upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": _nullable(settings.get("footer")),
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": merge_metadata({}, params.get("metadata")),
            "name": _nullable(params.get("name")),
            "next_invoice_sequence": 1,
            "phone": _nullable(params.get("phone")),
            "preferred_locales": list(params.get("preferred_locales") or []),
            "shipping": _nullable(params.get("shipping")),
            "tax_exempt": params.get("tax_exempt") or "none",
            "test_clock": None,
            "_sources": {
                "object": "list",
                "data": [],
                "has_more": False,
                "url": f"/v1/customers/{customer_id}/sources",
            },
        }
    )
    if params.get("payment_method"):
        pm = payment_method_attach(state, {"customer": customer_id}, params["payment_method"])
        customer["invoice_settings"]["default_payment_method"] = pm["id"]
    if settings.get("default_payment_method"):
        _set_default_payment_method(state, customer, settings["default_payment_method"])
    state.emit("customer.created", customer)
    return customer


def _set_default_payment_method(state: State, customer: dict, pm_id: str) -> None:
    pm = state.store.get(pm_id, "payment_method", "invoice_settings[default_payment_method]")
    if pm["customer"] != customer["id"]:
        raise StripeError(
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.",
            code="resource_missing",
            param="invoice_settings[default_payment_method]",
        )
    customer["invoice_settings"]["default_payment_method"] = pm_id


@route("GET", "/v1/customers/{id}")
def customer_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "customer")


@route("POST", "/v1/customers/{id}")
def customer_update(state: State, params: dict, id: str) -> dict:
    validate(params, {k: v for k, v in _CUSTOMER_FIELDS.items() if k != "payment_method"})
    customer = state.store.get(id, "customer")
    before = state.snapshot(customer)
    for key in ("address", "description", "email", "name", "phone", "shipping", "tax_exempt"):
        if key in params:
            customer[key] = _nullable(params[key])
    if "invoice_prefix" in params:
        customer["invoice_prefix"] = params["invoice_prefix"]
    if "preferred_locales" in params:
        customer["preferred_locales"] = list(params["preferred_locales"] or [])
    customer["metadata"] = merge_metadata(customer["metadata"], params.get("metadata"))
    settings = params.get("invoice_settings") or {}
    if "default_payment_method" in settings:
        if settings["default_payment_method"]:
            _set_default_payment_method(state, customer, settings["default_payment_method"])
        else:
            customer["invoice_settings"]["default_payment_method"] = None
    if "footer" in settings:
        customer["invoice_settings"]["footer"] = _nullable(settings["footer"])
    state.emit("customer.updated", customer, before)
    return customer


@route("DELETE", "/v1/customers/{id}")
def customer_delete(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    customer = state.store.get(id, "customer")
    # "Permanently deletes a customer. It cannot be undone. Also immediately cancels any
    # active subscriptions on the customer." (Delete a customer,
    # https://docs.stripe.com/api/customers/delete): cancelled without a final invoice, so the
    # usage not yet invoiced is discarded.
    for sub in state.store.all("subscription"):
        if sub["customer"] == id and sub["status"] not in ("canceled", "incomplete_expired"):
            subscription_cancel(state, sub)
    snapshot = dict(customer)
    state.store.remove(id)
    state.webhooks.emit("customer.deleted", snapshot, None, state.current_request)
    return {"id": id, "object": "customer", "deleted": True}


@route("GET", "/v1/customers")
def customer_list(state: State, params: dict) -> dict:
    validate(params, {**LIST_PARAMS, "email": None, "test_clock": None})
    items = state.store.all("customer")
    if params.get("email"):
        items = [c for c in items if c["email"] == params["email"]]
    return state.store.page(items, params, "/v1/customers", params.get("expand"))


# ----- payment methods ---------------------------------------------------------------------------


def _card_payment_method(state: State, token: str) -> dict:
    store = state.store
    brand, last4 = _TEST_CARDS[token]
    year = 1970 + store.now() // 31_556_952
    return store.add(
        {
            "id": store.new_id("pm"),
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {
                    "city": None,
                    "country": None,
                    "line1": None,
                    "line2": None,
                    "postal_code": None,
                    "state": None,
                },
                "email": None,
                "name": None,
                "phone": None,
                "tax_id": None,
            },
            "card": {
                "brand": brand,
                "checks": {
                    "address_line1_check": None,
                    "address_postal_code_check": None,
                    "cvc_check": "pass",
                },
                "country": "US",
                "display_brand": brand,
                "exp_month": 12,
                "exp_year": year + 3,
                "fingerprint": secrets.token_hex(8),
                "funding": "credit",
                "generated_from": None,
                "last4": last4,
                "networks": {"available": [brand], "preferred": None},
                "regulated_status": "unregulated",
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
            "created": store.now(),
            "customer": None,
            "livemode": False,
            "metadata": {},
            "type": "card",
            "_token": token,
        }
    )


def card_for_customer(state: State, customer_id: str, token: str = "pm_card_visa") -> dict:  # noqa: S107
    """A fresh test card attached to the customer (the hosted pages' "card" input)."""
    return payment_method_attach(state, {"customer": customer_id}, token)


@route("POST", "/v1/payment_methods/{id}/attach")
def payment_method_attach(state: State, params: dict, id: str) -> dict:
    validate(params, {"customer": None})
    store = state.store
    customer = store.get(params.get("customer"), "customer", "customer")
    pm = _card_payment_method(state, id) if id in _TEST_CARDS else store.get(id, "payment_method")
    pm["customer"] = customer["id"]
    if pm.get("_token") == "pm_card_chargeDeclined":
        store.declining_customers.add(customer["id"])
    return pm


@route("POST", "/v1/payment_methods/{id}/detach")
def payment_method_detach(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    pm = state.store.get(id, "payment_method")
    pm["customer"] = None
    return pm


@route("GET", "/v1/payment_methods/{id}")
def payment_method_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "payment_method")


@route("GET", "/v1/payment_methods")
def payment_method_list(state: State, params: dict) -> dict:
    validate(params, {**LIST_PARAMS, "customer": None, "type": None})
    items = [
        pm
        for pm in state.store.all("payment_method")
        if (not params.get("customer") or pm["customer"] == params["customer"])
        and (not params.get("type") or pm["type"] == params["type"])
    ]
    return state.store.page(items, params, "/v1/payment_methods", params.get("expand"))


@route("GET", "/v1/customers/{id}/payment_methods")
def customer_payment_methods(state: State, params: dict, id: str) -> dict:
    validate(params, {**LIST_PARAMS, "type": None, "allow_redisplay": None})
    state.store.get(id, "customer")
    items = [pm for pm in state.store.all("payment_method") if pm["customer"] == id]
    return state.store.page(items, params, f"/v1/customers/{id}/payment_methods")
