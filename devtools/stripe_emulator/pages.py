"""Hosted pages a browser opens: Checkout, the customer portal, invoices.

Plain HTML forms, no JavaScript, so browser tests (and `requests`) can drive them. Buttons are
`<button name="action">` inside POST forms; each POST answers with a 303 redirect, or re-renders
the page with the card error.
"""

from __future__ import annotations

from html import escape

from .billing import subscription_items
from .errors import StripeError
from .resources.checkout import session_complete
from .resources.invoices import invoice_pay
from .resources.portal import (
    portal_cancel_at_period_end,
    portal_cancel_now,
    portal_subscription,
    portal_switch,
    portal_update_card,
    session_configuration,
    switchable_products,
)
from .router import Response, route
from .state import State


def _money(amount: int | None, currency: str = "usd") -> str:
    if amount is None:
        return "metered"
    return f"{amount / 100:,.2f} {currency.upper()}"


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} · Stripe emulator</title>"
        "<style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto}"
        ".error{color:#b00020}table{border-collapse:collapse}td,th{padding:.3rem .6rem}"
        "</style></head>"
        f"<body><p><small>Stripe emulator — test mode</small></p><h1>{escape(title)}</h1>"
        f"{body}</body></html>"
    )
    return Response(status, html.encode(), {"Content-Type": "text/html; charset=utf-8"})


def _redirect(url: str) -> Response:
    return Response(303, b"", {"Location": url})


def _form(action: str, label: str, name: str = "action", value: str = "", extra: str = ""):
    return (
        f"<form method='post' action='{escape(action)}'>{extra}"
        f"<button type='submit' name='{name}' value='{escape(value or label)}'>"
        f"{escape(label)}</button></form>"
    )


# ----- Checkout ----------------------------------------------------------------------------------


def _checkout_page(state: State, session: dict, error: str | None = None) -> Response:
    store = state.store
    rows = []
    for price_id, quantity in session["_lines"]:
        price = store.objects[price_id]
        product = store.objects[price["product"]]
        rows.append(
            f"<tr><td>{escape(product['name'])}</td><td>{quantity or '—'}</td>"
            f"<td>{_money(price['unit_amount'], price['currency'])}</td></tr>"
        )
    action = f"/c/pay/{session['id']}"
    body = (
        f"<table><tr><th>Item</th><th>Qty</th><th>Price</th></tr>{''.join(rows)}</table>"
        f"<p>Status: <strong id='status'>{escape(session['status'])}</strong></p>"
    )
    if error:
        body += f"<p class='error' role='alert'>{escape(error)}</p>"
    if session["status"] == "open":
        body += _form(f"{action}/pay", "Pay") + _form(f"{action}/decline", "Decline")
        if session["cancel_url"]:
            body += f"<p><a href='{escape(session['cancel_url'])}'>Cancel</a></p>"
    return _page("Checkout", body, 402 if error else 200)


@route("GET", "/c/pay/{id}", api=False)
def checkout_page(state: State, params: dict, id: str) -> Response:
    return _checkout_page(state, state.store.get(id, "checkout.session"))


def _success_url(session: dict) -> str:
    return (session["success_url"] or "/").replace("{CHECKOUT_SESSION_ID}", session["id"])


@route("POST", "/c/pay/{id}/pay", api=False)
def checkout_pay(state: State, params: dict, id: str) -> Response:
    session = state.store.get(id, "checkout.session")
    if session_complete(state, session):
        return _redirect(_success_url(session))
    return _checkout_page(state, session, "Your card was declined.")


@route("POST", "/c/pay/{id}/decline", api=False)
def checkout_decline(state: State, params: dict, id: str) -> Response:
    session = state.store.get(id, "checkout.session")
    return _checkout_page(state, session, "Your card was declined.")


# ----- customer portal ---------------------------------------------------------------------------


@route("GET", "/p/session/{id}", api=False)
def portal_page(state: State, params: dict, id: str) -> Response:
    """The customer portal, showing only what the session's configuration enables: the
    products and prices of `features.subscription_update.products`, the cancel mode of
    `features.subscription_cancel`, card updates, invoice history."""
    store = state.store
    session = store.get(id, "billing_portal.session")
    features = session_configuration(state, session)["features"]
    customer_id = session["customer"]
    sub = portal_subscription(state, customer_id)
    action = f"/p/session/{id}/action"
    body = ""
    if sub is None:
        body += "<p id='subscription'>No current subscription.</p>"
    else:
        items = subscription_items(state, sub["id"])
        names = ", ".join(
            escape(store.objects[store.objects[i["_price_id"]]["product"]]["name"]) for i in items
        )
        current = {i["_price_id"] for i in items}
        body += (
            f"<p id='subscription'>Plan: <strong>{names}</strong> — status "
            f"<strong>{escape(sub['status'])}</strong>"
            + (" (cancels at period end)" if sub["cancel_at_period_end"] else "")
            + "</p>"
        )
        offers = [
            offer
            for offer in switchable_products(state, session_configuration(state, session))
            if offer[1]["id"] not in current
        ]
        if offers:
            body += "<h2>Change plan</h2>"
        for product, licensed, _ in offers:
            label = f"Switch to {product['name']} ({_money(licensed['unit_amount'])})"
            body += _form(
                action,
                label,
                value="switch",
                extra=f"<input type='hidden' name='product' value='{product['id']}'>",
            )
        cancel = features["subscription_cancel"]
        if cancel["enabled"]:
            body += "<h2>Cancel</h2>"
            if sub["cancel_at_period_end"]:
                body += _form(action, "Don't cancel", value="resume")
            elif cancel["mode"] == "at_period_end":
                body += _form(action, "Cancel at period end", value="cancel_at_period_end")
            else:
                body += _form(action, "Cancel now", value="cancel_now")
    if features["payment_method_update"]["enabled"]:
        body += "<h2>Payment method</h2>" + _form(action, "Update card", value="update_card")
    invoices = [
        i for i in store.all("invoice") if i["customer"] == customer_id and i["status"] != "draft"
    ]
    if invoices and features["invoice_history"]["enabled"]:
        body += (
            "<h2>Invoices</h2><ul>"
            + "".join(
                f"<li><a href='{escape(i['hosted_invoice_url'] or '')}'>{escape(i['number'] or '')}"
                f"</a> {_money(i['total'], i['currency'])} {escape(i['status'])}</li>"
                for i in invoices
            )
            + "</ul>"
        )
    if session["return_url"]:
        body += f"<p><a href='{escape(session['return_url'])}'>Return</a></p>"
    return _page("Billing", body)


@route("POST", "/p/session/{id}/action", api=False)
def portal_action(state: State, params: dict, id: str) -> Response:
    """Each action is refused (403) unless the session's configuration enables it."""
    session = state.store.get(id, "billing_portal.session")
    configuration = session_configuration(state, session)
    features = configuration["features"]
    cancel = features["subscription_cancel"]
    sub = portal_subscription(state, session["customer"])
    action = params.get("action")
    allowed = True
    if action == "update_card" and features["payment_method_update"]["enabled"]:
        portal_update_card(state, session["customer"])
    elif sub is not None and action == "switch":
        allowed = portal_switch(state, configuration, sub, params.get("product", ""))
    elif (
        sub is not None
        and action == "cancel_at_period_end"
        and cancel["enabled"]
        and cancel["mode"] == "at_period_end"
    ):
        portal_cancel_at_period_end(state, sub)
    elif sub is not None and action == "resume" and cancel["enabled"]:
        portal_cancel_at_period_end(state, sub, cancel=False)
    elif (
        sub is not None
        and action == "cancel_now"
        and cancel["enabled"]
        and cancel["mode"] == "immediately"
    ):
        portal_cancel_now(state, configuration, sub)
    else:
        allowed = False
    if not allowed:
        return _page(
            "Billing",
            "<p class='error' role='alert'>This portal's configuration does not allow that.</p>",
            403,
        )
    return _redirect(session["return_url"] or f"/p/session/{id}")


# ----- invoices ----------------------------------------------------------------------------------


def _invoice_page(state: State, invoice: dict, error: str | None = None) -> Response:
    lines = state.store.render(invoice)["lines"]["data"]
    rows = "".join(
        f"<tr><td>{escape(li['description'])}</td><td>{li['quantity']}</td>"
        f"<td>{_money(li['amount'], li['currency'])}</td></tr>"
        for li in lines
    )
    body = (
        f"<p>Invoice {escape(invoice['number'] or invoice['id'])} — status "
        f"<strong id='status'>{escape(invoice['status'])}</strong></p>"
        f"<table><tr><th>Description</th><th>Qty</th><th>Amount</th></tr>{rows}</table>"
        f"<p>Total: <strong>{_money(invoice['total'], invoice['currency'])}</strong></p>"
    )
    if error:
        body += f"<p class='error' role='alert'>{escape(error)}</p>"
    if invoice["status"] == "open":
        body += _form(f"/i/{invoice['id']}/pay", "Pay")
    return _page("Invoice", body, 402 if error else 200)


@route("GET", "/i/{id}", api=False)
def invoice_page(state: State, params: dict, id: str) -> Response:
    return _invoice_page(state, state.store.get(id, "invoice"))


@route("POST", "/i/{id}/pay", api=False)
def invoice_page_pay(state: State, params: dict, id: str) -> Response:
    invoice = state.store.get(id, "invoice")
    try:
        invoice_pay(state, invoice)
    except StripeError as error:
        return _invoice_page(state, invoice, error.message)
    return _redirect(f"/i/{id}")


@route("GET", "/i/{id}/pdf", api=False)
def invoice_pdf(state: State, params: dict, id: str) -> Response:
    # A text stand-in with the PDF media type: enough for a download link to work.
    invoice = state.store.get(id, "invoice")
    text = f"Invoice {invoice['number']}\nTotal {_money(invoice['total'], invoice['currency'])}\n"
    return Response(200, text.encode(), {"Content-Type": "application/pdf"})
