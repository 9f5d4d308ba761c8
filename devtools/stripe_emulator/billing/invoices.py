"""Invoices: drafts with their lines (pending invoice items included), finalization, payment.

- Renewal invoices are drafts, finalized (and charged) one hour after they are created, at the
  period's end; usage reported in that hour with a timestamp inside the period is billed on them.
  "All invoices have a default finalization grace period of 1 hour. During the finalization grace
  period, you can continue to report usage for the previous billing period. During finalization,
  Stripe updates the invoice to reflect the latest quantity for its billing period."
  (Configure an invoice finalization grace period,
  https://docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period). The first
  invoice of a subscription is finalized at once ("Subscription invoices",
  https://docs.stripe.com/billing/invoices/subscription#sub-invoice-lifecycle).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..state import State
from ..store import LAZY, Store, lazy_field
from .invoice_items import pending_invoice_items
from .items import add_months, subscription_items, subscription_period, subscription_update
from .pricing import cents, is_metered, price_amount, usage_total

FINALIZATION_GRACE = 3600  # Stripe's default invoice finalization grace period: one hour


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
    """A line of `invoice_id`, not stored: a preview's lines never are."""
    product = store.objects[price["product"]]
    return {
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
    lines, pending = _draft_lines(
        state,
        sub,
        invoice_id,
        licensed_period=licensed_period,
        metered_period=metered_period,
        usage_starts=usage_starts,
        extra_lines=extra_lines,
    )
    for line in lines:
        store.add(line)
    for item in pending:
        item["invoice"] = invoice_id
    sequence = customer["next_invoice_sequence"]
    customer["next_invoice_sequence"] = sequence + 1
    invoice = store.add(
        _invoice_body(
            state,
            sub,
            invoice_id,
            reason,
            period,
            sum(line["amount"] for line in lines),
            finalize_at=finalize_at,
            number=f"{customer['invoice_prefix']}-{sequence:04d}",
        )
    )
    sub["latest_invoice"] = invoice_id
    state.emit("invoice.created", invoice)
    return invoice


def invoice_preview(state: State, sub: dict) -> dict:
    """The invoice the subscription's current period will end with, as it stands now: what
    `POST /v1/invoices/create_preview` answers ("Create a preview invoice",
    https://docs.stripe.com/api/invoices/create_preview: "all the charges that are pending,
    including subscription renewal charges, invoice item charges"). The same lines the period's
    close makes (see clock._close_period): the metered usage reported so far, the pending
    invoice items, and the next period's licensed items unless the subscription ends with the
    period. Nothing is stored, numbered or emitted; the id is not an invoice's."""
    store = state.store
    start, end = subscription_period(state, sub)
    renews = not sub["cancel_at_period_end"]
    licensed = (end, add_months(sub["billing_cycle_anchor"], sub["_cycles"] + 1))
    invoice_id = "upcoming_" + store.new_id("in")
    lines, _ = _draft_lines(
        state,
        sub,
        invoice_id,
        licensed_period=licensed if renews else None,
        metered_period=(start, end),
        usage_starts=None,
        extra_lines=(),
    )
    invoice = _invoice_body(
        state,
        sub,
        invoice_id,
        "subscription_cycle",
        (start, end),
        sum(line["amount"] for line in lines),
        finalize_at=end + FINALIZATION_GRACE,
        number=None,
    )
    invoice["lines"] = {
        "object": "list",
        "data": [store.render(line) for line in lines],
        "has_more": False,
        "total_count": len(lines),
        "url": f"/v1/invoices/{invoice_id}/lines",
    }
    return invoice


def _draft_lines(
    state: State,
    sub: dict,
    invoice_id: str,
    *,
    licensed_period: tuple[int, int] | None,
    metered_period: tuple[int, int] | None,
    usage_starts: dict[str, int] | None,
    extra_lines: Sequence[dict],
) -> tuple[list[dict], list[dict]]:
    """The lines of an invoice (not stored), and the pending invoice items they bill."""
    store = state.store
    customer = store.objects[sub["customer"]]
    lines = []
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
        lines.append(
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
        )
    for credit in extra_lines:
        item = store.objects[credit["item"]]
        lines.append(
            _line(
                store,
                invoice_id,
                store.objects[item["_price_id"]],
                credit["quantity"],
                credit["amount"],
                credit["period"],
                _item_parent(sub, item["id"], proration=True),
            )
        )
    pending = pending_invoice_items(state, sub["id"])
    for invoice_item in pending:
        price = store.objects[invoice_item["pricing"]["price_details"]["price"]]
        lines.append(
            _line(
                store,
                invoice_id,
                price,
                invoice_item["quantity"],
                invoice_item["amount"],
                (invoice_item["period"]["start"], invoice_item["period"]["end"]),
                {
                    "invoice_item_details": {
                        "invoice_item": invoice_item["id"],
                        "proration": invoice_item["proration"],
                        "proration_details": {"credited_items": None},
                        "subscription": sub["id"],
                    },
                    "subscription_item_details": None,
                    "type": "invoice_item_details",
                },
            )
        )
    return lines, pending


def _invoice_body(
    state: State,
    sub: dict,
    invoice_id: str,
    reason: str,
    period: tuple[int, int],
    total: int,
    *,
    finalize_at: int | None,
    number: str | None,
) -> dict:
    store = state.store
    customer = store.objects[sub["customer"]]
    base = state.base_url
    now = store.now()
    return {
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
        "_number": number,
        "_hosted": f"{base}/i/{invoice_id}",
    }


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
