"""Customer portal sessions and the actions its hosted page offers."""

from __future__ import annotations

from ..billing import (
    is_metered,
    subscription_add_item,
    subscription_cancel,
    subscription_items,
    subscription_swap_price,
)
from ..params import require, validate
from ..router import route
from ..state import State
from .customers import card_for_customer


def _default_configuration(state: State) -> dict:
    store = state.store
    existing = store.all("billing_portal.configuration")
    if existing:
        return existing[-1]
    now = store.now()
    return store.add(
        {
            "id": store.new_id("bpc"),
            "object": "billing_portal.configuration",
            "active": True,
            "application": None,
            "business_profile": {
                "headline": None,
                "privacy_policy_url": None,
                "terms_of_service_url": None,
            },
            "created": now,
            "default_return_url": None,
            "features": {
                "customer_update": {"allowed_updates": [], "enabled": False},
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
                "subscription_update": {"enabled": True, "proration_behavior": "none"},
            },
            "is_default": True,
            "livemode": False,
            "login_page": {"enabled": False, "url": None},
            "metadata": {},
            "name": None,
            "updated": now,
        }
    )


@route("POST", "/v1/billing_portal/sessions")
def portal_session_create(state: State, params: dict) -> dict:
    validate(
        params,
        {
            "configuration": None,
            "customer": None,
            "flow_data": None,
            "locale": None,
            "on_behalf_of": None,
            "return_url": None,
        },
    )
    require(params, "customer")
    store = state.store
    store.get(params["customer"], "customer", "customer")
    if params.get("configuration"):
        configuration = store.get(
            params["configuration"], "billing_portal.configuration", "configuration"
        )
    else:
        configuration = _default_configuration(state)
    session_id = store.new_id("bps")
    return store.add(
        {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": configuration["id"],
            "created": store.now(),
            "customer": params["customer"],
            "flow": None,
            "livemode": False,
            "locale": params.get("locale"),
            "on_behalf_of": None,
            "return_url": params.get("return_url") or configuration["default_return_url"],
            "url": f"{state.base_url}/p/session/{session_id}",
        }
    )


@route("GET", "/v1/billing_portal/configurations/{id}")
def configuration_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "billing_portal.configuration")


# ----- hosted page actions -----------------------------------------------------------------------


def portal_subscription(state: State, customer_id: str) -> dict | None:
    """The customer's current (not canceled) subscription, newest first."""
    return next(
        (
            s
            for s in state.store.all("subscription")
            if s["customer"] == customer_id and s["status"] != "canceled"
        ),
        None,
    )


def switchable_products(state: State) -> list[tuple[dict, dict, dict | None]]:
    """(product, licensed price, metered price or None) for every active product on sale."""
    store = state.store
    offers = []
    for product in reversed(store.all("product")):
        if not product["active"]:
            continue
        prices = [
            p
            for p in store.all("price")
            if p["product"] == product["id"] and p["active"] and p["recurring"]
        ]
        licensed = next((p for p in prices if not is_metered(p)), None)
        metered = next((p for p in prices if is_metered(p)), None)
        if licensed:
            offers.append((product, licensed, metered))
    return offers


def portal_switch(state: State, sub: dict, product_id: str) -> None:
    """Move the subscription to another product: its licensed and metered prices replace ours."""
    offer = next((o for o in switchable_products(state) if o[0]["id"] == product_id), None)
    if offer is None:
        return
    _, licensed, metered = offer
    before = state.snapshot(sub)
    store = state.store
    for item in subscription_items(state, sub["id"]):
        current = store.objects[item["_price_id"]]
        target = metered if is_metered(current) else licensed
        if target is None:
            store.remove(item["id"])
        else:
            subscription_swap_price(state, item, target["id"])
    if metered and not any(
        is_metered(store.objects[i["_price_id"]]) for i in subscription_items(state, sub["id"])
    ):
        subscription_add_item(state, sub, metered["id"], None)
    state.emit("customer.subscription.updated", sub, before)


def portal_cancel_at_period_end(state: State, sub: dict, cancel: bool = True) -> None:
    before = state.snapshot(sub)
    end = subscription_items(state, sub["id"])[0]["current_period_end"]
    sub.update(
        cancel_at_period_end=cancel,
        cancel_at=end if cancel else None,
        canceled_at=state.store.now() if cancel else None,
    )
    state.emit("customer.subscription.updated", sub, before)


def portal_cancel_now(state: State, sub: dict) -> None:
    subscription_cancel(state, sub, invoice_now=True)


def portal_update_card(state: State, customer_id: str) -> None:
    """A new working card: declines stop, and it becomes the default payment method."""
    store = state.store
    store.declining_customers.discard(customer_id)
    card = card_for_customer(state, customer_id)
    customer = store.objects[customer_id]
    before = state.snapshot(customer)
    customer["invoice_settings"]["default_payment_method"] = card["id"]
    state.emit("customer.updated", customer, before)
