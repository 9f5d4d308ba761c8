"""Invoices, their line items, and retrying payment."""

from __future__ import annotations

from ..billing import invoice_attempt, invoice_lines
from ..errors import StripeError
from ..params import ANY, validate
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
