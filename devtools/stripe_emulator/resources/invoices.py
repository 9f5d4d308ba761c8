"""Invoices, their line items, invoice items, finalizing and retrying payment."""

from __future__ import annotations

from ..billing import invoice_attempt, invoice_finalize, invoice_lines, invoice_preview
from ..errors import StripeError
from ..params import ANY, to_bool, validate
from ..router import route
from ..state import State
from .customers import LIST_PARAMS


@route("GET", "/v1/invoices/{id}")
def invoice_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "invoice")


@route("GET", "/v1/invoices")
def invoice_list(state: State, params: dict) -> dict:
    validate(
        params,
        {
            **LIST_PARAMS,
            "customer": None,
            "subscription": None,
            "status": None,
            "collection_method": None,
            "due_date": ANY,
        },
    )
    items = state.store.all("invoice")
    if params.get("customer"):
        items = [i for i in items if i["customer"] == params["customer"]]
    if params.get("subscription"):
        items = [
            i
            for i in items
            if i["parent"]["subscription_details"]["subscription"] == params["subscription"]
        ]
    if params.get("status"):
        items = [i for i in items if i["status"] == params["status"]]
    return state.store.page(items, params, "/v1/invoices", params.get("expand"))


# Subscriptions whose period still ends in an invoice; an ended one has no upcoming invoice.
UPCOMING_STATUSES = ("active", "past_due", "trialing", "unpaid")


@route("POST", "/v1/invoices/create_preview")
def invoice_create_preview(state: State, params: dict) -> dict:
    """The upcoming invoice of a customer's subscription ("Create a preview invoice",
    https://docs.stripe.com/api/invoices/create_preview), as ``billing.invoice_preview`` builds
    it. Only the preview of what is: no ``subscription_details`` or ``invoice_items`` changes."""
    validate(params, {"customer": None, "subscription": None, "preview_mode": None})
    store = state.store
    if params.get("preview_mode", "next") != "next":
        raise StripeError(
            "Only preview_mode=next is emulated.", param="preview_mode", replayable=False
        )
    customer_id = params.get("customer")
    sub: dict | None
    if params.get("subscription"):
        sub = store.get(params["subscription"], "subscription", "subscription")
        if customer_id and sub["customer"] != customer_id:
            raise StripeError(
                f"The subscription {sub['id']} does not belong to the customer {customer_id}.",
                param="subscription",
            )
    elif customer_id:
        store.get(customer_id, "customer", "customer")
        live = [
            s
            for s in store.all("subscription")
            if s["customer"] == customer_id and s["status"] in UPCOMING_STATUSES
        ]
        sub = live[0] if live else None
    else:
        raise StripeError(
            "You must provide one of customer, customer_details, subscription or schedule.",
            replayable=False,
        )
    if sub is None or sub["status"] not in UPCOMING_STATUSES:
        raise StripeError(
            f"No upcoming invoices for customer: {customer_id or (sub and sub['customer'])}",
            code="invoice_upcoming_none",
        )
    return store.render(invoice_preview(state, sub), params.get("expand"))


@route("GET", "/v1/invoices/{id}/lines")
def invoice_line_list(state: State, params: dict, id: str) -> dict:
    validate(params, LIST_PARAMS)
    state.store.get(id, "invoice")
    lines = list(reversed(invoice_lines(state, id)))
    page = state.store.page(lines, params, f"/v1/invoices/{id}/lines", params.get("expand"))
    page["data"].reverse()
    return page


def invoice_pay(state: State, invoice: dict) -> dict:
    if invoice["status"] == "paid":
        raise StripeError("Invoice is already paid", code="invoice_already_paid")
    if invoice["status"] == "draft":
        invoice_finalize(state, invoice)  # paying a draft finalizes it first
    if invoice["status"] != "open":
        raise StripeError(f"This invoice can't be paid: its status is {invoice['status']}.")
    if not invoice_attempt(state, invoice):
        raise StripeError(
            "Your card was declined.",
            status=402,
            type="card_error",
            code="card_declined",
        )
    return invoice


@route("POST", "/v1/invoices/{id}/pay")
def invoice_pay_endpoint(state: State, params: dict, id: str) -> dict:
    validate(params, {"off_session": None, "payment_method": None})
    return invoice_pay(state, state.store.get(id, "invoice"))


@route("POST", "/v1/invoices/{id}/finalize")
def invoice_finalize_endpoint(state: State, params: dict, id: str) -> dict:
    """Finalize a draft before its grace hour is over (`auto_advance` then charges it)."""
    validate(params, {"auto_advance": None})
    invoice = state.store.get(id, "invoice")
    if invoice["status"] != "draft":
        raise StripeError(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable",
        )
    if "auto_advance" in params:
        invoice["auto_advance"] = to_bool(params["auto_advance"], "auto_advance")
    invoice_finalize(state, invoice)
    if invoice["auto_advance"]:
        invoice_attempt(state, invoice)
    return invoice


@route("GET", "/v1/invoiceitems/{id}")
def invoice_item_retrieve(state: State, params: dict, id: str) -> dict:
    validate(params, {})
    return state.store.get(id, "invoiceitem")


@route("GET", "/v1/invoiceitems")
def invoice_item_list(state: State, params: dict) -> dict:
    validate(params, {**LIST_PARAMS, "customer": None, "invoice": None, "pending": None})
    items = state.store.all("invoiceitem")
    if params.get("customer"):
        items = [i for i in items if i["customer"] == params["customer"]]
    if params.get("invoice"):
        items = [i for i in items if i["invoice"] == params["invoice"]]
    if "pending" in params:
        pending = to_bool(params["pending"], "pending")
        items = [i for i in items if (i["invoice"] is None) == pending]
    return state.store.page(items, params, "/v1/invoiceitems", params.get("expand"))
