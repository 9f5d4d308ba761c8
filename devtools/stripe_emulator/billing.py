"""Subscriptions, invoices and the test clock: the part of Stripe Billing Meterdesk relies on.

Amounts: each invoice line is computed exactly with Decimal (unit_amount_decimal x units, tier by
tier) and rounded half up to whole cents once, at the line's total; the invoice total is the sum of
its lines. Periods are calendar months from the billing cycle anchor (31 Jan → 28/29 Feb → 31 Mar).

Stripe behaviours reproduced here, with the documentation they follow:

- Renewal invoices are drafts, finalized (and charged) one hour after they are created, at the
  period's end; usage reported in that hour with a timestamp inside the period is billed on them.
  "All invoices have a default finalization grace period of 1 hour. During the finalization grace
  period, you can continue to report usage for the previous billing period. During finalization,
  Stripe updates the invoice to reflect the latest quantity for its billing period."
  (Configure an invoice finalization grace period,
  https://docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period). The first
  invoice of a subscription is finalized at once ("Subscription invoices",
  https://docs.stripe.com/billing/invoices/subscription#sub-invoice-lifecycle).
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

Not emulated: licensed-price prorations on price changes (a new licensed price applies from the
next period), discounts, taxes.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from .state import State
from .store import LAZY, Store, lazy_field

LIVE_STATUSES = ("active", "past_due", "trialing")
FINALIZATION_GRACE = 3600  # Stripe's default invoice finalization grace period: one hour
PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")


# ----- time and money ----------------------------------------------------------------------------


def add_months(anchor: int, months: int) -> int:
    moment = datetime.fromtimestamp(anchor, UTC)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def cents(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def price_amount(price: dict, quantity: int) -> Decimal:
    """The exact (unrounded) amount for `quantity` units of `price`."""
    if price["billing_scheme"] == "per_unit":
        return Decimal(price["unit_amount_decimal"] or 0) * quantity
    tiers = price["_tiers"]
    if price["tiers_mode"] == "volume":
        tier = next(t for t in tiers if t["up_to"] is None or quantity <= t["up_to"])
        return _tier_cost(tier, quantity)
    total, lower = Decimal(0), 0
    for tier in tiers:  # graduated: each tier prices the units that fall inside it
        upper = tier["up_to"]
        units = (quantity if upper is None else min(quantity, upper)) - lower
        if units <= 0:
            break
        total += _tier_cost(tier, units)
        if upper is None:
            break
        lower = upper
    return total


def _tier_cost(tier: dict, units: int) -> Decimal:
    unit = Decimal(tier["unit_amount_decimal"] or 0)
    flat = Decimal(tier["flat_amount_decimal"] or 0)
    return unit * units + flat


def is_metered(price: dict) -> bool:
    recurring = price.get("recurring") or {}
    return recurring.get("usage_type") == "metered"


def usage_total(state: State, customer_id: str, meter_id: str, start: int, end: int) -> int:
    """Sum of accepted meter event values for a customer and meter within [start, end)."""
    return sum(
        event["value"]
        for event in state.store.meter_events
        if event["customer"] == customer_id
        and event["meter"] == meter_id
        and start <= event["timestamp"] < end
    )


# ----- subscriptions -----------------------------------------------------------------------------


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


def _item(state: State, subscription_id: str, price_id: str, quantity, start: int, end: int):
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
        _item(state, sub_id, price_id, quantity, now, end)
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


def subscription_period(state: State, sub: dict) -> tuple[int, int]:
    first = subscription_items(state, sub["id"])[0]
    return first["current_period_start"], first["current_period_end"]


def subscription_update(state: State, sub: dict, **changes) -> None:
    before = state.snapshot(sub)
    sub.update(changes)
    state.emit("customer.subscription.updated", sub, before)


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
    return _item(state, sub["id"], price_id, quantity, start, end)


def invoice_now_for_update(state: State, sub: dict) -> dict | None:
    """proration_behavior=always_invoice: the pending invoice items of the update are invoiced
    (and charged) at once."""
    if not _pending_items(state, sub["id"]):
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


# ----- the clock -----------------------------------------------------------------------------


def clock_advance(state: State, to: int) -> None:
    """Move the clock to `to`, doing in time order what falls due on the way: closing billing
    periods (a draft renewal invoice each) and finalizing drafts whose grace hour has passed."""
    store = state.store
    while True:
        due = []
        for sub in store.all("subscription"):
            if sub["status"] in LIVE_STATUSES and subscription_items(state, sub["id"]):
                period_end = subscription_period(state, sub)[1]
                if period_end <= to:
                    due.append((period_end, 0, sub["_seq"], sub))
        for invoice in store.all("invoice"):
            at = invoice["automatically_finalizes_at"]
            if invoice["status"] == "draft" and at is not None and at <= to:
                due.append((at, 1, invoice["_seq"], invoice))
        if not due:
            break
        moment, kind, _, obj = min(due, key=lambda entry: entry[:3])
        _set_clock(store, moment)
        if kind == 0:
            _close_period(state, obj)
        else:
            invoice_finalize(state, obj)
            invoice_attempt(state, obj)
    _set_clock(store, to)


def catch_up(state: State) -> None:
    """Do what real time brought due (a demo left running past a period end or a grace hour)."""
    clock_advance(state, state.store.now())


def _set_clock(store: Store, moment: int) -> None:
    if moment > store.now():
        store.clock.offset += moment - store.now()


def _close_period(state: State, sub: dict) -> None:
    start, end = subscription_period(state, sub)
    grace_end = end + FINALIZATION_GRACE
    if sub["cancel_at_period_end"]:
        if any(
            is_metered(state.store.objects[i["_price_id"]])
            for i in subscription_items(state, sub["id"])
        ) or _pending_items(state, sub["id"]):
            invoice_create(
                state,
                sub,
                "subscription_cycle",
                (start, end),
                licensed_period=None,
                metered_period=(start, end),
                finalize_at=grace_end,
            )
        before = state.snapshot(sub)
        sub.update(status="canceled", ended_at=end)
        state.emit("customer.subscription.deleted", sub, before)
        return
    next_end = add_months(sub["billing_cycle_anchor"], sub["_cycles"] + 1)
    items = subscription_items(state, sub["id"])
    usage_starts = {item["id"]: item["_usage_start"] for item in items}
    before = state.snapshot(sub)
    sub["_cycles"] += 1
    for item in items:
        item.update(current_period_start=end, current_period_end=next_end, _usage_start=end)
    state.emit("customer.subscription.updated", sub, before)
    invoice_create(
        state,
        sub,
        "subscription_cycle",
        (start, end),
        licensed_period=(end, next_end),
        metered_period=(start, end),
        usage_starts=usage_starts,
        finalize_at=grace_end,
    )


# ----- invoice items -----------------------------------------------------------------------------


def invoice_item_create(
    state: State,
    sub: dict,
    item: dict,
    price: dict,
    quantity: int,
    amount: int,
    period: tuple[int, int],
    proration: bool = False,
) -> dict:
    """A pending invoice item for a subscription, picked up by its next invoice."""
    store = state.store
    product = store.objects[price["product"]]
    invoice_item = store.add(
        {
            "id": store.new_id("ii"),
            "object": "invoiceitem",
            "amount": amount,
            "currency": price["currency"],
            "customer": sub["customer"],
            "date": store.now(),
            "description": f"{quantity} x {product['name']}"
            + (" (usage)" if is_metered(price) else " (unused time)"),
            "discountable": not proration,
            "discounts": [],
            "invoice": None,
            "livemode": False,
            "metadata": {},
            "net_amount": amount,
            "parent": {
                "subscription_details": {
                    "subscription": sub["id"],
                    "subscription_item": item["id"],
                },
                "type": "subscription_details",
            },
            "period": {"end": period[1], "start": period[0]},
            "pricing": {
                "price_details": {"price": price["id"], "product": product["id"]},
                "type": "price_details",
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
            "proration": proration,
            "proration_details": {"debit_amount": None, "discount_amounts": []},
            "quantity": quantity,
            "tax_rates": [],
            "test_clock": None,
        }
    )
    state.emit("invoiceitem.created", invoice_item)
    return invoice_item


def _pending_items(state: State, subscription_id: str) -> list[dict]:
    return [
        ii
        for ii in reversed(state.store.all("invoiceitem"))
        if ii["invoice"] is None
        and ii["parent"]["subscription_details"]["subscription"] == subscription_id
    ]


# ----- invoices ----------------------------------------------------------------------------------


def invoice_lines(state: State, invoice_id: str) -> list[dict]:
    return _lines_of(state.store, invoice_id)


def _lines_of(store: Store, invoice_id: str) -> list[dict]:
    return list(reversed([li for li in store.all("line_item") if li["invoice"] == invoice_id]))


@lazy_field("invoice", "lines")
def _invoice_lines_field(store: Store, invoice: dict) -> dict:
    return store.embedded_list(
        _lines_of(store, invoice["id"]), f"/v1/invoices/{invoice['id']}/lines"
    )


def _line(
    store: Store,
    invoice_id: str,
    price: dict,
    quantity: int,
    amount: int,
    period: tuple[int, int],
    parent: dict,
    **private,
) -> dict:
    product = store.objects[price["product"]]
    return store.add(
        {
            "id": store.new_id("il"),
            "object": "line_item",
            "amount": amount,
            "currency": price["currency"],
            "description": f"{quantity} x {product['name']}"
            + (" (usage)" if is_metered(price) else ""),
            "discount_amounts": [],
            "discountable": True,
            "discounts": [],
            "invoice": invoice_id,
            "livemode": False,
            "metadata": {},
            "parent": parent,
            "period": {"end": period[1], "start": period[0]},
            "pretax_credit_amounts": [],
            "pricing": {
                "price_details": {"price": price["id"], "product": product["id"]},
                "type": "price_details",
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
            "quantity": quantity,
            "subtotal": amount,
            "taxes": [],
            **{f"_{key}": value for key, value in private.items()},
        }
    )


def _item_parent(sub: dict, item_id: str, proration: bool = False) -> dict:
    return {
        "invoice_item_details": None,
        "subscription_item_details": {
            "invoice_item": None,
            "proration": proration,
            "proration_details": {"credited_items": None},
            "subscription": sub["id"],
            "subscription_item": item_id,
        },
        "type": "subscription_item_details",
    }


def invoice_create(
    state: State,
    sub: dict,
    reason: str,
    period: tuple[int, int],
    *,
    licensed_period: tuple[int, int] | None,
    metered_period: tuple[int, int] | None,
    usage_starts: dict[str, int] | None = None,
    extra_lines: Sequence[dict] = (),
    finalize_at: int | None = None,
) -> dict:
    """A draft invoice: licensed items billed in advance for `licensed_period`, metered items in
    arrears for `metered_period` (each from when its price was put on the item), the
    subscription's pending invoice items, and `extra_lines` (proration credits). With
    `finalize_at` it finalizes itself then (see clock_advance)."""
    store = state.store
    customer = store.objects[sub["customer"]]
    invoice_id = store.new_id("in")
    base = state.base_url
    for item in subscription_items(state, sub["id"]):
        price = store.objects[item["_price_id"]]
        if is_metered(price):
            if metered_period is None:
                continue
            starts = usage_starts or {}
            start = max(metered_period[0], starts.get(item["id"], item["_usage_start"]))
            line_period = (min(start, metered_period[1]), metered_period[1])
            meter_id = price["recurring"]["meter"]
            quantity = usage_total(state, customer["id"], meter_id, *line_period)
            extra = {"meter": meter_id}
        else:
            if licensed_period is None:
                continue
            line_period = licensed_period
            quantity = item["quantity"]
            extra = {}
        amount = cents(price_amount(price, quantity))
        _line(
            store,
            invoice_id,
            price,
            quantity,
            amount,
            line_period,
            _item_parent(sub, item["id"]),
            **extra,
        )
    for credit in extra_lines:
        item = store.objects[credit["item"]]
        _line(
            store,
            invoice_id,
            store.objects[item["_price_id"]],
            credit["quantity"],
            credit["amount"],
            credit["period"],
            _item_parent(sub, item["id"], proration=True),
        )
    for pending in _pending_items(state, sub["id"]):
        pending["invoice"] = invoice_id
        price = store.objects[pending["pricing"]["price_details"]["price"]]
        _line(
            store,
            invoice_id,
            price,
            pending["quantity"],
            pending["amount"],
            (pending["period"]["start"], pending["period"]["end"]),
            {
                "invoice_item_details": {
                    "invoice_item": pending["id"],
                    "proration": pending["proration"],
                    "proration_details": {"credited_items": None},
                    "subscription": sub["id"],
                },
                "subscription_item_details": None,
                "type": "invoice_item_details",
            },
        )
    total = sum(line["amount"] for line in _lines_of(store, invoice_id))
    sequence = customer["next_invoice_sequence"]
    customer["next_invoice_sequence"] = sequence + 1
    now = store.now()
    invoice = store.add(
        {
            "id": invoice_id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Meterdesk (emulated)",
            "account_tax_ids": None,
            "amount_due": max(total, 0),
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": max(total, 0),
            "amount_shipping": 0,
            "application": None,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": True,
            "automatic_tax": {
                "disabled_reason": None,
                "enabled": False,
                "liability": None,
                "provider": None,
                "status": None,
            },
            "automatically_finalizes_at": finalize_at,
            "billing_reason": reason,
            "collection_method": "charge_automatically",
            "confirmation_secret": None,
            "created": now,
            "currency": sub["currency"],
            "custom_fields": None,
            "customer": customer["id"],
            "customer_address": customer["address"],
            "customer_email": customer["email"],
            "customer_name": customer["name"],
            "customer_phone": customer["phone"],
            "customer_shipping": None,
            "customer_tax_exempt": "none",
            "customer_tax_ids": [],
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "due_date": None,
            "effective_at": None,
            "ending_balance": None,
            "footer": None,
            "from_invoice": None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "lines": LAZY,
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": finalize_at,
            "number": None,
            "on_behalf_of": None,
            "parent": {
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(sub["metadata"]),
                    "subscription": sub["id"],
                },
                "type": "subscription_details",
            },
            "payment_settings": {
                "default_mandate": None,
                "payment_method_options": None,
                "payment_method_types": None,
            },
            "period_end": period[1],
            "period_start": period[0],
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": None,
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": 0,
            "statement_descriptor": None,
            "status": "draft",
            "status_transitions": {
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "test_clock": None,
            "total": total,
            "total_discount_amounts": [],
            "total_excluding_tax": total,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": now,
            "_number": f"{customer['invoice_prefix']}-{sequence:04d}",
            "_hosted": f"{base}/i/{invoice_id}",
        }
    )
    sub["latest_invoice"] = invoice_id
    state.emit("invoice.created", invoice)
    return invoice


def _refresh_usage(state: State, invoice: dict) -> None:
    """At finalization a draft shows the latest usage of its period: events reported during the
    grace hour with a timestamp inside the line's period are counted."""
    store = state.store
    changed = False
    for line in _lines_of(store, invoice["id"]):
        meter_id = line.get("_meter")
        if not meter_id:
            continue
        price = store.objects[line["pricing"]["price_details"]["price"]]
        period = line["period"]["start"], line["period"]["end"]
        quantity = usage_total(state, invoice["customer"], meter_id, *period)
        if quantity != line["quantity"]:
            amount = cents(price_amount(price, quantity))
            line.update(
                quantity=quantity,
                amount=amount,
                subtotal=amount,
                description=f"{quantity} x {store.objects[price['product']]['name']} (usage)",
            )
            changed = True
    if changed:
        before = state.snapshot(invoice)
        total = sum(line["amount"] for line in _lines_of(store, invoice["id"]))
        invoice.update(
            total=total,
            subtotal=total,
            subtotal_excluding_tax=total,
            total_excluding_tax=total,
            amount_due=max(total, 0),
            amount_remaining=max(total, 0),
        )
        state.emit("invoice.updated", invoice, before)


def invoice_finalize(state: State, invoice: dict) -> None:
    if invoice["status"] != "draft":
        return
    _refresh_usage(state, invoice)
    store = state.store
    customer = store.objects.get(invoice["customer"])
    before = state.snapshot(invoice)
    now = store.now()
    # The customer's balance (a credit is negative) is applied to the amount due.
    starting = customer["balance"] if customer else 0
    net = invoice["total"] + starting
    ending = min(net, 0)
    if customer and ending != starting:
        customer_before = state.snapshot(customer)
        customer["balance"] = ending
        state.emit("customer.updated", customer, customer_before)
    invoice.update(
        status="open",
        number=invoice["_number"],
        effective_at=now,
        starting_balance=starting,
        ending_balance=ending,
        amount_due=max(net, 0),
        amount_remaining=max(net, 0),
        automatically_finalizes_at=None,
        next_payment_attempt=now if net > 0 else None,
        hosted_invoice_url=invoice["_hosted"],
        invoice_pdf=invoice["_hosted"] + "/pdf",
        status_transitions={**invoice["status_transitions"], "finalized_at": now},
    )
    state.emit("invoice.finalized", invoice, before)


def invoice_attempt(state: State, invoice: dict) -> bool:
    """Charge the customer's card; a declining customer fails and the subscription goes past_due.

    A zero-total invoice is paid without a charge, as Stripe does.
    """
    store = state.store
    customer_id = invoice["customer"]
    before = state.snapshot(invoice)
    sub = store.objects[invoice["parent"]["subscription_details"]["subscription"]]
    if invoice["amount_due"] > 0:
        invoice.update(attempt_count=invoice["attempt_count"] + 1, attempted=True)
    if invoice["amount_due"] > 0 and customer_id in store.declining_customers:
        invoice["next_payment_attempt"] = None
        state.emit("invoice.payment_failed", invoice, before)
        if sub["status"] == "active":
            subscription_update(state, sub, status="past_due")
        return False
    now = store.now()
    invoice.update(
        status="paid",
        amount_paid=invoice["amount_due"],
        amount_remaining=0,
        attempted=True,
        next_payment_attempt=None,
        status_transitions={**invoice["status_transitions"], "paid_at": now},
    )
    state.emit("invoice.paid", invoice, before)
    state.webhooks.emit("invoice.payment_succeeded", invoice, None, state.current_request)
    if sub["status"] == "past_due" and not _has_open_invoice(state, sub["id"]):
        subscription_update(state, sub, status="active")
    return True


def _has_open_invoice(state: State, subscription_id: str) -> bool:
    return any(
        inv["status"] == "open"
        and inv["parent"]["subscription_details"]["subscription"] == subscription_id
        for inv in state.store.all("invoice")
    )
