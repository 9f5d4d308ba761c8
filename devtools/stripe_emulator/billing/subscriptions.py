"""Subscriptions: creation, item and price changes mid-period, and cancellation.

- Subscriptions default to `billing_mode: flexible` ("Makes flexible billing mode the default for
  new subscriptions", https://docs.stripe.com/changelog/clover/2025-09-30/billing-mode-default-flexible).
  Each metered item bills the usage of its own price from `_usage_start` (the period start, or
  when the price was put on the item). "With billing_mode=flexible subscriptions, we create an
  invoice item that bills for previously reported metered usage when you remove a metered price
  from a subscription ... The proration_behavior you specify when removing a metered price affects
  these metered invoice items" (Manage your usage-based billing setup, "Update prices mid-cycle",
  https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup). In `classic`
  mode the usage before a switch is not billed ("Usage from January 1 to January 16 isn't
  billed").
- Canceling at once bills the usage so far only with `invoice_now` ("Will generate a final invoice
  that invoices for any un-invoiced metered usage and new/pending proration invoice items"),
  `prorate` credits the unused licensed time ("Cancel a subscription",
  https://docs.stripe.com/api/subscriptions/cancel); "Any metered usage is charged for in a final
  invoice when the subscription cancels at the end of the billing period."
"""

from __future__ import annotations

from decimal import Decimal

from ..state import State
from ..store import LAZY
from .invoice_items import invoice_item_create, pending_invoice_items
from .invoices import (
    FINALIZATION_GRACE,
    invoice_attempt,
    invoice_create,
    invoice_finalize,
)
from .items import (
    add_months,
    billing_mode,
    is_flexible,
    subscription_item_create,
    subscription_items,
    subscription_period,
)
from .pricing import cents, is_metered, price_amount, usage_total

PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")


def subscription_create(
    state: State,
    customer_id: str,
    lines: list,
    metadata: dict,
    mode: str = "flexible",
) -> tuple[dict, dict]:
    """Create an active subscription and its paid first invoice (Checkout's "Pay" button)."""
    store = state.store
    now = store.now()
    end = add_months(now, 1)
    sub_id = store.new_id("sub")
    sub = store.add(
        {
            "id": sub_id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": now,
            "billing_cycle_anchor_config": None,
            "billing_mode": billing_mode(mode, now),
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "created": now,
            "currency": store.objects[lines[0][0]]["currency"],
            "customer": customer_id,
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": LAZY,
            "latest_invoice": None,
            "livemode": False,
            "metadata": dict(metadata),
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": None,
                "save_default_payment_method": "off",
            },
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": now,
            "status": "active",
            "test_clock": None,
            "transfer_data": None,
            "trial_end": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
            "_cycles": 1,
        }
    )
    for price_id, quantity in lines:
        subscription_item_create(state, sub_id, price_id, quantity, now, end)
    state.emit("customer.subscription.created", sub)
    invoice = invoice_create(
        state,
        sub,
        "subscription_create",
        (now, end),
        licensed_period=(now, end),
        metered_period=(now, now),
    )
    invoice_finalize(state, invoice)
    invoice_attempt(state, invoice)
    return sub, invoice


def _close_usage_segment(
    state: State, sub: dict, item: dict, proration_behavior: str
) -> dict | None:
    """Flexible billing mode: when a metered price leaves the item (price switch or item deletion),
    an invoice item bills the usage reported so far for it, unless proration_behavior=none."""
    store = state.store
    price = store.objects[item["_price_id"]]
    if not is_metered(price) or not is_flexible(sub) or proration_behavior == "none":
        return None
    now = store.now()
    start = item["_usage_start"]
    quantity = usage_total(state, sub["customer"], price["recurring"]["meter"], start, now)
    if quantity <= 0:
        return None
    return invoice_item_create(
        state, sub, item, price, quantity, cents(price_amount(price, quantity)), (start, now)
    )


def item_change_price(
    state: State, sub: dict, item: dict, price_id: str, proration_behavior: str
) -> dict | None:
    """Move an item to another price in place (same si_ id, same period). Returns the invoice
    item billing the old metered price's usage, if one was created."""
    closed = _close_usage_segment(state, sub, item, proration_behavior)
    price = state.store.objects[price_id]
    item["_price_id"] = price_id
    item["_usage_start"] = state.store.now()
    if is_metered(price):
        item.pop("quantity", None)
    else:
        item.setdefault("quantity", 1)
    return closed


def item_remove(state: State, sub: dict, item: dict, proration_behavior: str) -> dict | None:
    closed = _close_usage_segment(state, sub, item, proration_behavior)
    state.store.remove(item["id"])
    return closed


def subscription_add_item(state: State, sub: dict, price_id: str, quantity) -> dict:
    start, end = subscription_period(state, sub)
    return subscription_item_create(state, sub["id"], price_id, quantity, start, end)


def invoice_now_for_update(state: State, sub: dict) -> dict | None:
    """proration_behavior=always_invoice: the pending invoice items of the update are invoiced
    (and charged) at once."""
    if not pending_invoice_items(state, sub["id"]):
        return None
    now = state.store.now()
    invoice = invoice_create(
        state, sub, "subscription_update", (now, now), licensed_period=None, metered_period=None
    )
    invoice_finalize(state, invoice)
    invoice_attempt(state, invoice)
    return invoice


def subscription_cancel(
    state: State, sub: dict, invoice_now: bool = False, prorate: bool = False
) -> None:
    """Cancel immediately. With `invoice_now`, a final invoice bills the metered usage so far and
    the pending invoice items; with `prorate`, the unused licensed time is credited. Without
    `invoice_now` the un-invoiced usage is discarded."""
    store = state.store
    now = store.now()
    start, _ = subscription_period(state, sub)
    credits = _proration_credits(state, sub, now) if prorate else []
    if invoice_now:
        invoice_create(
            state,
            sub,
            "subscription_cycle",
            (start, now),
            licensed_period=None,
            metered_period=(start, now),
            extra_lines=credits,
            finalize_at=now + FINALIZATION_GRACE,
        )
    else:
        for credit in credits:  # pending until the customer's next invoice
            item = store.objects[credit["item"]]
            invoice_item_create(
                state,
                sub,
                item,
                store.objects[item["_price_id"]],
                credit["quantity"],
                credit["amount"],
                credit["period"],
                proration=True,
            )
    before = state.snapshot(sub)
    sub.update(
        status="canceled",
        canceled_at=sub["canceled_at"] or now,
        ended_at=now,
        cancellation_details={**sub["cancellation_details"], "reason": "cancellation_requested"},
    )
    state.emit("customer.subscription.deleted", sub, before)


def _proration_credits(state: State, sub: dict, now: int) -> list[dict]:
    """Credits for the unused time of licensed items, from `now` to the period end."""
    store = state.store
    credits = []
    for item in subscription_items(state, sub["id"]):
        price = store.objects[item["_price_id"]]
        start, end = item["current_period_start"], item["current_period_end"]
        if is_metered(price) or end <= now or end <= start:
            continue
        unused = Decimal(end - now) / Decimal(end - start)
        amount = -cents(price_amount(price, item["quantity"]) * unused)
        credits.append(
            {
                "item": item["id"],
                "quantity": item["quantity"],
                "amount": amount,
                "period": (now, end),
            }
        )
    return credits
