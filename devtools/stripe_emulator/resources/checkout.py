"""Checkout Sessions in subscription mode, completed from a local hosted page."""

from __future__ import annotations

from ..billing import is_metered, subscription_create
from ..errors import StripeError, invalid_parameter
from ..params import ANY, choice, require, to_int, validate
from ..router import route
from ..state import State
from ..store import LAZY, lazy_field
from .customers import LIST_PARAMS, card_for_customer

SESSION_LIFETIME = 24 * 3600


@route("POST", "/v1/checkout/sessions")
def session_create(state: State, params: dict) -> dict:
    validate(
        params,
        {
            "allow_promotion_codes": None,
            "billing_address_collection": None,
            "cancel_url": None,
            "client_reference_id": None,
            "customer": None,
            "customer_email": None,
            "customer_update": ANY,
            "line_items": [{"price": None, "quantity": None}],
            "locale": None,
            "metadata": ANY,
            "mode": None,
            "payment_method_types": [None],
            "subscription_data": {
                "billing_mode": {"type": None, "flexible": {"proration_discounts": None}},
                "description": None,
                "metadata": ANY,
            },
            "success_url": None,
        },
    )
    require(params, "mode")
    choice(params["mode"], "mode", ("subscription",))  # the only mode Meterdesk uses
    store = state.store
    if params.get("customer"):
        store.get(params["customer"], "customer", "customer")
    if not params.get("line_items"):
        raise StripeError(
            "`line_items` is required in `subscription` mode.",
            code="parameter_missing",
            param="line_items",
            replayable=False,
        )
    lines, subtotal, currency = [], 0, None
    for index, line in enumerate(params["line_items"]):
        name = f"line_items[{index}]"
        if not line.get("price"):
            raise StripeError(
                f"Missing required param: {name}[price].",
                code="parameter_missing",
                param=f"{name}[price]",
                replayable=False,
            )
        price = store.get(line["price"], "price", f"{name}[price]")
        if not price["active"]:
            raise invalid_parameter(f"{name}[price]", f"The price `{price['id']}` is not active.")
        if price["type"] != "recurring":
            raise invalid_parameter(
                f"{name}[price]",
                "In `subscription` mode, all line items must use recurring prices.",
            )
        if is_metered(price):
            if "quantity" in line:
                raise invalid_parameter(
                    f"{name}[quantity]",
                    "Quantity should not be specified where usage_type is `metered`. Remove "
                    f"quantity from `{name}`.",
                )
            quantity = None
        else:
            quantity = to_int(line.get("quantity", 1), f"{name}[quantity]")
            subtotal += (price["unit_amount"] or 0) * quantity
        currency = currency or price["currency"]
        lines.append((price["id"], quantity))
    session_id = store.new_id("cs", 58)
    now = store.now()
    subscription_data = params.get("subscription_data") or {}
    # Subscriptions created through Checkout default to flexible billing mode too
    # (https://docs.stripe.com/changelog/clover/2025-09-30/billing-mode-default-flexible).
    mode = choice(
        (subscription_data.get("billing_mode") or {}).get("type", "flexible"),
        "subscription_data[billing_mode][type]",
        ("classic", "flexible"),
    )
    store.add(
        {
            "id": session_id,
            "object": "checkout.session",
            "adaptive_pricing": None,
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": subtotal,
            "amount_total": subtotal,
            "automatic_tax": {
                "enabled": False,
                "liability": None,
                "provider": None,
                "status": None,
            },
            "billing_address_collection": None,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "client_secret": None,
            "consent": None,
            "created": now,
            "currency": currency,
            "customer": params.get("customer"),
            "customer_creation": None if params.get("customer") else "always",
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "expires_at": now + SESSION_LIFETIME,
            "invoice": None,
            "livemode": False,
            "locale": params.get("locale"),
            "metadata": dict(params.get("metadata") or {}),
            "mode": "subscription",
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "always",
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": params.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{state.base_url}/c/pay/{session_id}",
            "_lines": lines,
            "_subscription_metadata": dict(subscription_data.get("metadata") or {}),
            "_billing_mode": mode,
            "_line_items": LAZY,
            "_declined": False,
        }
    )
    return store.objects[session_id]


@lazy_field("checkout.session", "line_items")
def _line_items_field(store, session: dict) -> dict:
    return _line_items(store, session["id"])


def _line_items(store, session_id: str) -> dict:
    session = store.objects[session_id]
    data = []
    for index, (price_id, quantity) in enumerate(session["_lines"]):
        price = store.objects[price_id]
        amount = (price["unit_amount"] or 0) * (quantity or 0)
        data.append(
            {
                "id": f"li_{session_id[-20:]}{index}",
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": price["currency"],
                "description": store.objects[price["product"]]["name"],
                "price": store.render(price),
                "quantity": quantity,
            }
        )
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "url": f"/v1/checkout/sessions/{session_id}/line_items",
    }


@route("GET", "/v1/checkout/sessions/{id}")
def session_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "checkout.session")


@route("GET", "/v1/checkout/sessions/{id}/line_items")
def session_line_items(state: State, params: dict, id: str) -> dict:
    validate(params, LIST_PARAMS)
    state.store.get(id, "checkout.session")
    return _line_items(state.store, id)


@route("GET", "/v1/checkout/sessions")
def session_list(state: State, params: dict) -> dict:
    validate(params, {**LIST_PARAMS, "customer": None, "subscription": None, "status": None})
    items = state.store.all("checkout.session")
    for key in ("customer", "subscription", "status"):
        if params.get(key):
            items = [s for s in items if s[key] == params[key]]
    return state.store.page(items, params, "/v1/checkout/sessions", params.get("expand"))


@route("POST", "/v1/checkout/sessions/{id}/expire")
def session_expire(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    session = state.store.get(id, "checkout.session")
    if session["status"] != "open":
        raise StripeError(f"Only open sessions can be expired; this one is {session['status']}.")
    session["status"] = "expired"
    return session


def session_complete(state: State, session: dict) -> bool:
    """The hosted page's "Pay": False (and the session stays open) when the card declines."""
    store = state.store
    if session["status"] != "open":
        return session["status"] == "complete"
    customer_id = session["customer"]
    if customer_id is None:
        from .customers import customer_create

        customer_id = customer_create(state, {"email": session["customer_email"] or ""})["id"]
        session["customer"] = customer_id
    if customer_id in store.declining_customers:
        session["_declined"] = True
        return False
    card = card_for_customer(state, customer_id)
    sub, invoice = subscription_create(
        state,
        customer_id,
        session["_lines"],
        session["_subscription_metadata"],
        session.get("_billing_mode", "flexible"),
    )
    sub["default_payment_method"] = card["id"]
    customer = store.objects[customer_id]
    session.update(
        status="complete",
        payment_status="paid",
        subscription=sub["id"],
        invoice=invoice["id"],
        customer_details={
            "address": None,
            "email": customer["email"],
            "name": customer["name"],
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
    )
    state.emit("checkout.session.completed", session)
    return True
