"""Subscription items: each carries its price, its current period and since when it accrues usage.

Periods are calendar months from the billing cycle anchor (31 Jan → 28/29 Feb → 31 Mar).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from ..state import State
from ..store import LAZY, Store, lazy_field
from .pricing import is_metered


def add_months(anchor: int, months: int) -> int:
    moment = datetime.fromtimestamp(anchor, UTC)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def _items_of(store: Store, subscription_id: str) -> list[dict]:
    items = [i for i in store.all("subscription_item") if i["subscription"] == subscription_id]
    return list(reversed(items))  # creation order, as Stripe embeds them


def subscription_items(state: State, subscription_id: str) -> list[dict]:
    return _items_of(state.store, subscription_id)


@lazy_field("subscription", "items")
def _subscription_items_field(store: Store, sub: dict) -> dict:
    return store.embedded_list(
        _items_of(store, sub["id"]), f"/v1/subscription_items?subscription={sub['id']}"
    )


@lazy_field("subscription_item", "price")
def _item_price_field(store: Store, item: dict) -> dict:
    return store.render(store.objects[item["_price_id"]])


def billing_mode(kind: str, now: int) -> dict:
    if kind == "flexible":
        return {
            "flexible": {"proration_discounts": "included"},
            "type": "flexible",
            "updated_at": now,
        }
    return {"flexible": None, "type": "classic", "updated_at": None}


def is_flexible(sub: dict) -> bool:
    return sub["billing_mode"]["type"] == "flexible"


def subscription_item_create(
    state: State, subscription_id: str, price_id: str, quantity, start: int, end: int
):
    store = state.store
    now = store.now()
    item: dict = {
        "id": store.new_id("si", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": now,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "price": LAZY,
        "subscription": subscription_id,
        "tax_rates": [],
        "_price_id": price_id,
        # Since when this item's current price accrues metered usage.
        "_usage_start": max(start, now),
    }
    if not is_metered(store.objects[price_id]):
        item["quantity"] = int(quantity or 1)  # metered items carry no quantity
    return store.add(item)


def subscription_period(state: State, sub: dict) -> tuple[int, int]:
    first = subscription_items(state, sub["id"])[0]
    return first["current_period_start"], first["current_period_end"]


def subscription_update(state: State, sub: dict, **changes) -> None:
    before = state.snapshot(sub)
    sub.update(changes)
    state.emit("customer.subscription.updated", sub, before)
