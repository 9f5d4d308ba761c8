"""Checkout, subscriptions, the test clock's invoices, declines and the customer portal."""

from __future__ import annotations

import pytest
import requests
import stripe

MONTH = 31 * 86400
GRACE = 3600  # renewal invoices are finalized (and charged) an hour after the period ends


def _renew(client, emulator, sub):
    """Move the clock past the period's end and its invoice's finalization grace hour."""
    end = client.v1.subscriptions.retrieve(sub.id)["items"].data[0].current_period_end
    emulator.advance_clock(to=end + GRACE)


def _usage(client, catalog, *values):
    for index, value in enumerate(values):
        client.v1.billing.meter_events.create(
            params={
                "event_name": "api_calls",
                "identifier": f"usage-{index}",
                "payload": {"stripe_customer_id": catalog.customer.id, "value": str(value)},
            }
        )


def test_metered_line_item_takes_no_quantity(catalog, stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": catalog.customer.id,
                "line_items": [{"price": catalog.metered.id, "quantity": 1}],
                "success_url": "http://portal.test/ok",
            }
        )
    assert caught.value.param == "line_items[0][quantity]"


def test_checkout_pay_creates_an_active_subscription(catalog, stripe_client, stripe_emulator):
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": catalog.customer.id,
            "client_reference_id": "acct-7",
            "subscription_data": {"metadata": {"acct": "7"}},
            "line_items": [
                {"price": catalog.base.id, "quantity": 1},
                {"price": catalog.metered.id},
            ],
            "success_url": "http://portal.test/ok?session={CHECKOUT_SESSION_ID}",
        }
    )
    assert session.status == "open" and session.url.startswith(stripe_emulator.url)
    page = requests.get(session.url, timeout=5)
    assert "Pay" in page.text and "Decline" in page.text
    declined = requests.post(session.url + "/decline", allow_redirects=False, timeout=5)
    assert "declined" in declined.text
    paid = requests.post(session.url + "/pay", allow_redirects=False, timeout=5)
    assert paid.headers["Location"] == f"http://portal.test/ok?session={session.id}"
    session = stripe_client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["subscription", "line_items"]}
    )
    assert (session.status, session.payment_status) == ("complete", "paid")
    sub = session.subscription
    assert sub.status == "active" and sub.metadata["acct"] == "7"
    items = sub["items"].data
    assert [i.price.id for i in items] == [catalog.base.id, catalog.metered.id]
    assert items[0].current_period_start == stripe_emulator.now
    assert "quantity" not in items[1]
    first = stripe_client.v1.invoices.retrieve(sub.latest_invoice)
    assert (first.status, first.total, first.billing_reason) == (
        "paid",
        2900,
        "subscription_create",
    )
    assert first.parent.subscription_details.subscription == sub.id
    types = [e["type"] for e in stripe_emulator.events()]
    for expected in (
        "customer.subscription.created",
        "invoice.created",
        "invoice.paid",
        "checkout.session.completed",
    ):
        assert expected in types


def test_checkout_with_a_declining_card_stays_open(catalog, stripe_client, stripe_emulator):
    stripe_emulator.set_card_declines(catalog.customer.id, True)
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": catalog.customer.id,
            "line_items": [{"price": catalog.base.id, "quantity": 1}],
            "success_url": "http://portal.test/ok",
        }
    )
    answer = requests.post(session.url + "/pay", allow_redirects=False, timeout=5)
    assert answer.status_code == 402 and "declined" in answer.text
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_period_close_bills_base_plus_usage_past_included_units(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    _usage(stripe_client, catalog, 700, 700, 700, 1)  # 2,101 calls: 1,101 over the included 1,000
    _renew(stripe_client, stripe_emulator, sub)
    invoices = stripe_client.v1.invoices.list(params={"subscription": sub.id}).data
    cycle = invoices[0]
    assert cycle.billing_reason == "subscription_cycle" and cycle.status == "paid"
    lines = {li.pricing.price_details.price: li for li in cycle.lines.data}
    assert lines[catalog.metered.id].quantity == 2101
    assert lines[catalog.metered.id].amount == 551  # 1,101 x 0.5¢ = 550.5¢, rounded half up
    assert lines[catalog.base.id].amount == 2900
    assert cycle.total == 2900 + 551
    assert cycle.period_end == sub["items"].data[0].current_period_end
    rolled = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert rolled["items"].data[0].current_period_start == cycle.period_end


def test_per_unit_metered_price_bills_every_unit(catalog, stripe_client, stripe_emulator):
    per_call = stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "product": catalog.product.id,
            "unit_amount_decimal": "0.25",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": catalog.meter.id},
        }
    )
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": catalog.customer.id,
            "line_items": [{"price": per_call.id}],
            "success_url": "http://portal.test/ok",
        }
    )
    requests.post(session.url + "/pay", allow_redirects=False, timeout=5)
    _usage(stripe_client, catalog, 40, 60)
    stripe_emulator.advance_clock(MONTH + GRACE)
    invoice = stripe_client.v1.invoices.list(params={"customer": catalog.customer.id}).data[0]
    accepted = stripe_emulator.meter_event_total(catalog.customer.id, catalog.meter.id)
    assert invoice.total == accepted * 0.25 == 25


def test_declined_renewal_goes_past_due_then_recovers_when_paid(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    stripe_emulator.set_card_declines(catalog.customer.id, True)
    _renew(stripe_client, stripe_emulator, sub)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    invoice = stripe_client.v1.invoices.list(params={"customer": catalog.customer.id}).data[0]
    assert invoice.status == "open" and invoice.attempt_count == 1
    assert stripe_emulator.events("invoice.payment_failed")
    with pytest.raises(stripe.CardError):
        stripe_client.v1.invoices.pay(invoice.id)
    stripe_emulator.set_card_declines(catalog.customer.id, False)
    paid = stripe_client.v1.invoices.pay(invoice.id)
    assert paid.status == "paid" and paid.amount_remaining == 0
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"
    updated = stripe_emulator.events("customer.subscription.updated")[-1]
    assert updated["data"]["previous_attributes"] == {"status": "past_due"}


def test_hosted_invoice_page_pays_an_open_invoice(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    stripe_emulator.set_card_declines(catalog.customer.id, True)
    _renew(stripe_client, stripe_emulator, sub)
    invoice = stripe_client.v1.invoices.list(params={"status": "open"}).data[0]
    stripe_emulator.set_card_declines(catalog.customer.id, False)
    requests.post(invoice.hosted_invoice_url + "/pay", timeout=5)
    assert stripe_client.v1.invoices.retrieve(invoice.id).status == "paid"


def test_cancel_at_period_end_ends_the_subscription(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    updated = stripe_client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert updated.cancel_at_period_end and updated.status == "active"
    _renew(stripe_client, stripe_emulator, sub)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert stripe_emulator.events("customer.subscription.deleted")
    assert stripe_client.v1.subscriptions.list(params={"customer": catalog.customer.id}).data == []


def test_customer_portal_switches_to_a_configured_plan_and_cancels(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    business = stripe_client.v1.products.create(params={"name": "Business"})
    business_base = stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "product": business.id,
            "unit_amount": 9900,
            "recurring": {"interval": "month"},
        }
    )
    business_metered = stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "product": business.id,
            "unit_amount_decimal": "0.1",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": catalog.meter.id},
        }
    )
    configuration = stripe_client.v1.billing_portal.configurations.create(
        params={
            "features": {
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "products": [
                        {"product": business.id, "prices": [business_base.id, business_metered.id]}
                    ],
                },
                "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
            }
        }
    )
    portal = stripe_client.v1.billing_portal.sessions.create(
        params={
            "customer": catalog.customer.id,
            "configuration": configuration.id,
            "return_url": "http://portal.test/billing",
        }
    )
    assert portal.configuration == configuration.id
    assert "Switch to Business" in requests.get(portal.url, timeout=5).text
    action = portal.url + "/action"
    answer = requests.post(
        action, data={"action": "switch", "product": business.id}, allow_redirects=False, timeout=5
    )
    assert answer.headers["Location"] == "http://portal.test/billing"
    prices = [i.price.id for i in stripe_client.v1.subscriptions.retrieve(sub.id)["items"].data]
    assert prices == [business_base.id, business_metered.id]
    requests.post(action, data={"action": "cancel_at_period_end"}, allow_redirects=False, timeout=5)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is True
    refused = requests.post(action, data={"action": "cancel_now"}, allow_redirects=False, timeout=5)
    assert refused.status_code == 403  # the configuration cancels at period end only
    stripe_client.v1.billing_portal.configurations.update(
        configuration.id, params={"features": {"subscription_cancel": {"mode": "immediately"}}}
    )
    requests.post(action, data={"action": "resume"}, allow_redirects=False, timeout=5)
    requests.post(action, data={"action": "cancel_now"}, allow_redirects=False, timeout=5)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_portal_card_update_stops_declines(catalog, stripe_client, stripe_emulator):
    stripe_emulator.save_portal_defaults(features={"payment_method_update": {"enabled": True}})
    stripe_emulator.set_card_declines(catalog.customer.id, True)
    portal = stripe_client.v1.billing_portal.sessions.create(
        params={"customer": catalog.customer.id, "return_url": "http://portal.test/billing"}
    )
    requests.post(
        portal.url + "/action", data={"action": "update_card"}, allow_redirects=False, timeout=5
    )
    customer = stripe_client.v1.customers.retrieve(catalog.customer.id)
    assert customer.invoice_settings.default_payment_method.startswith("pm_")
    assert stripe_emulator.stats()["declining_customers"] == []


def test_subscription_items_update_and_list(catalog, stripe_client, subscribe):
    sub = subscribe(catalog)
    base_item = sub["items"].data[0]
    updated = stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": base_item.id, "quantity": 3}], "metadata": {"a": "b"}}
    )
    assert updated["items"].data[0].quantity == 3 and updated.metadata["a"] == "b"
    listed = stripe_client.v1.subscription_items.list(params={"subscription": sub.id})
    assert [i.id for i in listed.data] == [i.id for i in updated["items"].data]
    assert stripe_client.v1.subscription_items.retrieve(base_item.id).subscription == sub.id


def test_deleting_a_customer_cancels_its_subscriptions_at_once(catalog, stripe_client, subscribe):
    # Delete a customer: "Also immediately cancels any active subscriptions on the customer."
    sub = subscribe(catalog)

    stripe_client.v1.customers.delete(catalog.customer.id)

    canceled = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert canceled.status == "canceled"
