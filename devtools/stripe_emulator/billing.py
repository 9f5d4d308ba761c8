"""Subscriptions, invoices and the test clock: the part of Stripe Billing Meterdesk relies on.

Amounts: each invoice line is computed exactly with Decimal (unit_amount_decimal x units, tier by
tier) and rounded half up to whole cents once, at the line's total; the invoice total is the sum of
its lines. Periods are calendar months from the billing cycle anchor (31 Jan → 28/29 Feb → 31 Mar).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from .state import State

LIVE_STATUSES = ("active", "past_due", "trialing")


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


def subscription_items(state: State, subscription_id: str) -> list[dict]:
    items = [
        i for i in state.store.all("subscription_item") if i["subscription"] == subscription_id
    ]
    return list(reversed(items))  # creation order, as Stripe embeds them


def _item(state: State, subscription_id: str, price_id: str, quantity, start: int, end: int):
    store = state.store
    item = {
        "id": store.new_id("si", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": store.now(),
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "price": lambda s, pid=price_id: s.render(s.objects[pid]),
        "subscription": subscription_id,
        "tax_rates": [],
        "_price_id": price_id,
    }
    if not is_metered(store.objects[price_id]):
        item["quantity"] = int(quantity or 1)  # metered items carry no quantity
    return store.add(item)


def subscription_create(
    state: State, customer_id: str, lines: list[tuple[str, int | None]], metadata: dict
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
            "billing_mode": {"flexible": None, "type": "classic"},
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
            "items": lambda s: s.embedded_list(
                subscription_items(state, sub_id), f"/v1/subscription_items?subscription={sub_id}"
            ),
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


def subscription_swap_price(state: State, item: dict, price_id: str) -> None:
    """Move an item to another price in place (same si_ id), keeping its period."""
    price = state.store.objects[price_id]
    item["_price_id"] = price_id
    item["price"] = lambda s, pid=price_id: s.render(s.objects[pid])
    if is_metered(price):
        item.pop("quantity", None)
    else:
        item.setdefault("quantity", 1)


def subscription_add_item(state: State, sub: dict, price_id: str, quantity) -> dict:
    start, end = subscription_period(state, sub)
    return _item(state, sub["id"], price_id, quantity, start, end)


def subscription_cancel(state: State, sub: dict, invoice_now: bool = False) -> None:
    """Cancel immediately; with `invoice_now`, bill the metered usage of the open period."""
    now = state.store.now()
    start, _ = subscription_period(state, sub)
    if invoice_now:
        _final_usage_invoice(state, sub, (start, now))
    before = state.snapshot(sub)
    sub.update(
        status="canceled",
        canceled_at=sub["canceled_at"] or now,
        ended_at=now,
        cancellation_details={**sub["cancellation_details"], "reason": "cancellation_requested"},
    )
    state.emit("customer.subscription.deleted", sub, before)


def _final_usage_invoice(state: State, sub: dict, period: tuple[int, int]) -> None:
    items = subscription_items(state, sub["id"])
    if any(is_metered(state.store.objects[i["_price_id"]]) for i in items):
        invoice = invoice_create(
            state, sub, "subscription_cycle", period, licensed_period=None, metered_period=period
        )
        invoice_finalize(state, invoice)
        invoice_attempt(state, invoice)


def clock_advance(state: State, to: int) -> None:
    """Move the clock to `to`, closing every billing period that ends on the way, in order."""
    store = state.store
    while True:
        due = []
        for sub in store.all("subscription"):
            if sub["status"] in LIVE_STATUSES:
                period_end = subscription_period(state, sub)[1]
                if period_end <= to:
                    due.append((period_end, sub["_seq"], sub))
        if not due:
            break
        period_end, _, sub = min(due, key=lambda entry: entry[:2])
        _set_clock(store, period_end)
        _close_period(state, sub)
    _set_clock(store, max(to, store.now()))


def _set_clock(store, moment: int) -> None:
    store.clock.offset += moment - store.now()


def _close_period(state: State, sub: dict) -> None:
    start, end = subscription_period(state, sub)
    if sub["cancel_at_period_end"]:
        _final_usage_invoice(state, sub, (start, end))
        before = state.snapshot(sub)
        sub.update(status="canceled", ended_at=end)
        state.emit("customer.subscription.deleted", sub, before)
        return
    next_end = add_months(sub["billing_cycle_anchor"], sub["_cycles"] + 1)
    before = state.snapshot(sub)
    sub["_cycles"] += 1
    for item in subscription_items(state, sub["id"]):
        item.update(current_period_start=end, current_period_end=next_end)
    state.emit("customer.subscription.updated", sub, before)
    invoice = invoice_create(
        state,
        sub,
        "subscription_cycle",
        (start, end),
        licensed_period=(end, next_end),
        metered_period=(start, end),
    )
    invoice_finalize(state, invoice)
    invoice_attempt(state, invoice)


# ----- invoices ----------------------------------------------------------------------------------


def invoice_lines(state: State, invoice_id: str) -> list[dict]:
    return list(
        reversed([li for li in state.store.all("line_item") if li["invoice"] == invoice_id])
    )


def invoice_create(
    state: State,
    sub: dict,
    reason: str,
    period: tuple[int, int],
    *,
    licensed_period: tuple[int, int] | None,
    metered_period: tuple[int, int] | None,
) -> dict:
    """A draft invoice: licensed items billed in advance for `licensed_period`, metered items in
    arrears for `metered_period` (usage from accepted meter events)."""
    store = state.store
    customer = store.objects[sub["customer"]]
    invoice_id = store.new_id("in")
    base = state.base_url
    total = 0
    for item in subscription_items(state, sub["id"]):
        price = store.objects[item["_price_id"]]
        if is_metered(price):
            if metered_period is None:
                continue
            line_period = metered_period
            meter_id = price["recurring"]["meter"]
            quantity = usage_total(state, customer["id"], meter_id, *metered_period)
        else:
            if licensed_period is None:
                continue
            line_period = licensed_period
            quantity = item["quantity"]
        amount = cents(price_amount(price, quantity))
        total += amount
        product = store.objects[price["product"]]
        store.add(
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
                "parent": {
                    "invoice_item_details": None,
                    "subscription_item_details": {
                        "invoice_item": None,
                        "proration": False,
                        "proration_details": {"credited_items": None},
                        "subscription": sub["id"],
                        "subscription_item": item["id"],
                    },
                    "type": "subscription_item_details",
                },
                "period": {"end": line_period[1], "start": line_period[0]},
                "pretax_credit_amounts": [],
                "pricing": {
                    "price_details": {"price": price["id"], "product": product["id"]},
                    "type": "price_details",
                    "unit_amount_decimal": price["unit_amount_decimal"],
                },
                "quantity": quantity,
                "subtotal": amount,
                "taxes": [],
            }
        )
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
            "amount_due": total,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": total,
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
            "automatically_finalizes_at": None,
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
            "lines": lambda s: s.embedded_list(
                invoice_lines(state, invoice_id), f"/v1/invoices/{invoice_id}/lines"
            ),
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": None,
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


def invoice_finalize(state: State, invoice: dict) -> None:
    before = state.snapshot(invoice)
    now = state.store.now()
    invoice.update(
        status="open",
        number=invoice["_number"],
        effective_at=now,
        ending_balance=0,
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
