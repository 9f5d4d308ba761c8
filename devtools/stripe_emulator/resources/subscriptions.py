"""Subscriptions and subscription items.

Price changes take effect at once. In flexible billing mode (the default) a metered price that
leaves an item has its usage so far billed by an invoice item, as `proration_behavior` says
(`create_prorations`, the default: on the next invoice; `always_invoice`: invoiced now; `none`:
not billed); see billing/subscriptions.py for the documentation. Licensed prices are not prorated.
"""

from __future__ import annotations

from ..billing import (
    PRORATION_BEHAVIORS,
    invoice_now_for_update,
    is_metered,
    item_change_price,
    item_remove,
    subscription_add_item,
    subscription_cancel,
    subscription_items,
)
from ..errors import StripeError, invalid_parameter
from ..params import ANY, choice, merge_metadata, to_bool, to_int, validate
from ..router import route
from ..state import State
from .customers import LIST_PARAMS

_ITEM = {
    "id": None,
    "price": None,
    "quantity": None,
    "deleted": None,
    "clear_usage": None,
    "metadata": ANY,
}


@route("GET", "/v1/subscriptions/{id}")
def subscription_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "subscription")


@route("GET", "/v1/subscriptions")
def subscription_list(state: State, params: dict) -> dict:
    validate(
        params,
        {
            **LIST_PARAMS,
            "customer": None,
            "price": None,
            "status": None,
            "test_clock": None,
            "current_period_end": ANY,
            "current_period_start": ANY,
        },
    )
    items = state.store.all("subscription")
    status = params.get("status")
    if status != "all":
        # Stripe's default list leaves canceled subscriptions out.
        items = [
            s for s in items if s["status"] == status or (not status and s["status"] != "canceled")
        ]
    if params.get("customer"):
        items = [s for s in items if s["customer"] == params["customer"]]
    if params.get("price"):
        items = [
            s
            for s in items
            if any(i["_price_id"] == params["price"] for i in subscription_items(state, s["id"]))
        ]
    return state.store.page(items, params, "/v1/subscriptions", params.get("expand"))


@route("POST", "/v1/subscriptions/{id}")
def subscription_update(state: State, params: dict, id: str) -> dict:
    validate(
        params,
        {
            "cancel_at_period_end": None,
            "default_payment_method": None,
            "description": None,
            "items": [_ITEM],
            "metadata": ANY,
            "proration_behavior": None,
            "cancellation_details": {"comment": None, "feedback": None},
        },
    )
    store = state.store
    sub = store.get(id, "subscription")
    if sub["status"] == "canceled":
        raise StripeError(
            "A canceled subscription can only update its cancellation_details and metadata.",
            param="items" if "items" in params else None,
        )
    proration_behavior = choice(
        params.get("proration_behavior", "create_prorations"),
        "proration_behavior",
        PRORATION_BEHAVIORS,
    )
    before = state.snapshot(sub)
    if "cancel_at_period_end" in params:
        cancel = to_bool(params["cancel_at_period_end"], "cancel_at_period_end")
        now = store.now()
        sub.update(
            cancel_at_period_end=cancel,
            canceled_at=now if cancel else None,
            cancel_at=_period_end(state, sub) if cancel else None,
        )
    if "default_payment_method" in params:
        sub["default_payment_method"] = params["default_payment_method"] or None
    if "description" in params:
        sub["description"] = params["description"] or None
    if "cancellation_details" in params:
        sub["cancellation_details"].update(params["cancellation_details"] or {})
    sub["metadata"] = merge_metadata(sub["metadata"], params.get("metadata"))
    for index, change in enumerate(params.get("items") or []):
        _apply_item_change(state, sub, change, f"items[{index}]", proration_behavior)
    state.emit("customer.subscription.updated", sub, before)
    if proration_behavior == "always_invoice":
        invoice_now_for_update(state, sub)
    return sub


def _period_end(state: State, sub: dict) -> int:
    return subscription_items(state, sub["id"])[0]["current_period_end"]


def _apply_item_change(
    state: State, sub: dict, change: dict, name: str, proration_behavior: str
) -> None:
    store = state.store
    if change.get("id"):
        item = store.get(change["id"], "subscription_item", f"{name}[id]")
        if item["subscription"] != sub["id"]:
            raise invalid_parameter(f"{name}[id]", "The item does not belong to this subscription.")
        if to_bool(change.get("deleted", "false"), f"{name}[deleted]"):
            item_remove(state, sub, item, proration_behavior)
            return
        if change.get("price") and change["price"] != item["_price_id"]:
            store.get(change["price"], "price", f"{name}[price]")
            item_change_price(state, sub, item, change["price"], proration_behavior)
    else:
        if not change.get("price"):
            raise StripeError(
                f"Missing required param: {name}[price].",
                code="parameter_missing",
                param=f"{name}[price]",
                replayable=False,
            )
        price = store.get(change["price"], "price", f"{name}[price]")
        item = subscription_add_item(state, sub, price["id"], change.get("quantity"))
    if "quantity" in change:
        if is_metered(store.objects[item["_price_id"]]):
            raise invalid_parameter(
                f"{name}[quantity]",
                "Quantity should not be specified where usage_type is `metered`.",
            )
        item["quantity"] = to_int(change["quantity"], f"{name}[quantity]")
    if change.get("metadata") is not None:
        item["metadata"] = merge_metadata(item["metadata"], change["metadata"])


@route("DELETE", "/v1/subscriptions/{id}")
def subscription_delete(state: State, params: dict, id: str) -> dict:
    validate(
        params,
        {
            "invoice_now": None,
            "prorate": None,
            "cancellation_details": {"comment": None, "feedback": None},
        },
    )
    sub = state.store.get(id, "subscription")
    if sub["status"] == "canceled":
        raise StripeError(
            f"No such subscription: '{id}' — it is already canceled.",
            status=404,
            code="resource_missing",
            param="id",
        )
    if params.get("cancellation_details"):
        sub["cancellation_details"].update(params["cancellation_details"])
    subscription_cancel(
        state,
        sub,
        invoice_now=to_bool(params.get("invoice_now", "false"), "invoice_now"),
        prorate=to_bool(params.get("prorate", "false"), "prorate"),
    )
    return sub


@route("GET", "/v1/subscription_items/{id}")
def item_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "subscription_item")


@route("GET", "/v1/subscription_items")
def item_list(state: State, params: dict) -> dict:
    validate(params, {**LIST_PARAMS, "subscription": None})
    if not params.get("subscription"):
        raise StripeError(
            "Missing required param: subscription.",
            code="parameter_missing",
            param="subscription",
            replayable=False,
        )
    state.store.get(params["subscription"], "subscription", "subscription")
    items = list(reversed(subscription_items(state, params["subscription"])))
    page = state.store.page(items, params, "/v1/subscription_items", params.get("expand"))
    page["data"].reverse()  # embedded in creation order, as Stripe lists items
    return page
