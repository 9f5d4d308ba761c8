"""Flexible billing mode (the default since 2025-09-30.clover) and usage-based prices changing mid
period: each price bills its own segment of the period. "Manage your usage-based billing setup",
https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup; "Cancel a
subscription", https://docs.stripe.com/api/subscriptions/cancel."""

from __future__ import annotations

import pytest
import requests

DAY = 86400
GRACE = 3600


@pytest.fixture
def per_call(catalog, stripe_client):
    """Another metered price on the same meter: a quarter of a cent for every call."""
    return stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "product": catalog.product.id,
            "unit_amount_decimal": "0.25",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": catalog.meter.id},
        }
    )


def _usage(client, catalog, value, identifier, timestamp=None):
    params = {
        "event_name": "api_calls",
        "identifier": identifier,
        "payload": {"stripe_customer_id": catalog.customer.id, "value": str(value)},
    }
    if timestamp is not None:
        params["timestamp"] = timestamp
    client.v1.billing.meter_events.create(params=params)


def _items(client, sub):
    return client.v1.subscriptions.retrieve(sub.id)["items"].data


def _renew(client, emulator, sub):
    emulator.advance_clock(to=_items(client, sub)[0].current_period_end + GRACE)
    return client.v1.invoices.list(params={"subscription": sub.id}).data[0]


def _amounts(invoice):
    return sorted((line.quantity, line.amount) for line in invoice.lines.data)


def _switch(client, sub, price_id, **params):
    metered_item = _items(client, sub)[1]
    return client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": metered_item.id, "price": price_id}], **params}
    )


def test_subscriptions_default_to_flexible_billing_mode(catalog, stripe_client, subscribe):
    sub = subscribe(catalog)
    assert sub.billing_mode.type == "flexible"
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": catalog.customer.id,
            "line_items": [{"price": catalog.base.id, "quantity": 1}],
            "subscription_data": {"billing_mode": {"type": "classic"}},
            "success_url": "http://portal.test/ok",
        }
    )
    requests.post(session.url + "/pay", allow_redirects=False, timeout=5)
    session = stripe_client.v1.checkout.sessions.retrieve(session.id)
    assert stripe_client.v1.subscriptions.retrieve(session.subscription).billing_mode.type == (
        "classic"
    )


def test_a_price_switch_bills_the_old_price_for_the_usage_before_it(
    catalog, per_call, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    start = _items(stripe_client, sub)[0].current_period_start
    _usage(stripe_client, catalog, 1500, "before", timestamp=start + 60)
    stripe_emulator.advance_clock(10 * DAY)
    switched = _switch(stripe_client, sub, per_call.id)
    assert switched["items"].data[1].price.id == per_call.id
    pending = stripe_client.v1.invoice_items.list(
        params={"customer": catalog.customer.id, "pending": True}
    ).data
    assert [(i.quantity, i.amount) for i in pending] == [(1500, 250)]  # 500 over, at 0.5 cent
    assert pending[0].period.end == stripe_emulator.now
    _usage(stripe_client, catalog, 100, "after")
    renewal = _renew(stripe_client, stripe_emulator, sub)
    # The base price, the new price on the usage after the switch (100 x 0.25 cent), and the old
    # segment's invoice item.
    assert _amounts(renewal) == [(1, 2900), (100, 25), (1500, 250)]
    assert renewal.total == 2900 + 25 + 250
    assert stripe_client.v1.invoice_items.retrieve(pending[0].id).invoice == renewal.id


def test_always_invoice_bills_the_old_segment_at_once(
    catalog, per_call, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    _usage(stripe_client, catalog, 3000, "before")
    stripe_emulator.advance_clock(DAY)
    updated = _switch(stripe_client, sub, per_call.id, proration_behavior="always_invoice")
    invoice = stripe_client.v1.invoices.retrieve(updated.latest_invoice)
    assert (invoice.billing_reason, invoice.status) == ("subscription_update", "paid")
    assert _amounts(invoice) == [(3000, 1000)]
    renewal = _renew(stripe_client, stripe_emulator, sub)
    assert _amounts(renewal) == [(0, 0), (1, 2900)]


@pytest.mark.parametrize("mode", ["flexible", "classic"])
def test_without_prorations_or_in_classic_mode_the_old_usage_is_not_billed(
    catalog, per_call, stripe_client, stripe_emulator, mode
):
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": catalog.customer.id,
            "line_items": [
                {"price": catalog.base.id, "quantity": 1},
                {"price": catalog.metered.id},
            ],
            "subscription_data": {"billing_mode": {"type": mode}},
            "success_url": "http://portal.test/ok",
        }
    )
    requests.post(session.url + "/pay", allow_redirects=False, timeout=5)
    sub = stripe_client.v1.subscriptions.retrieve(
        stripe_client.v1.checkout.sessions.retrieve(session.id).subscription
    )
    _usage(stripe_client, catalog, 5000, "before")
    stripe_emulator.advance_clock(DAY)
    behavior = "none" if mode == "flexible" else "create_prorations"
    _switch(stripe_client, sub, per_call.id, proration_behavior=behavior)
    assert stripe_client.v1.invoice_items.list(params={"pending": True}).data == []
    _usage(stripe_client, catalog, 40, "after")
    assert _amounts(_renew(stripe_client, stripe_emulator, sub)) == [(1, 2900), (40, 10)]


def test_deleting_the_metered_item_bills_its_usage_so_far(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    _usage(stripe_client, catalog, 1200, "before")
    stripe_emulator.advance_clock(DAY)
    metered_item = _items(stripe_client, sub)[1]
    stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": metered_item.id, "deleted": True}]}
    )
    _usage(stripe_client, catalog, 999, "after")  # no metered price any more: billed nowhere
    assert _amounts(_renew(stripe_client, stripe_emulator, sub)) == [(1, 2900), (1200, 100)]


def test_cancel_now_bills_usage_so_far_only_with_invoice_now(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    _usage(stripe_client, catalog, 1400, "so-far")
    stripe_emulator.advance_clock(DAY)
    canceled = stripe_client.v1.subscriptions.cancel(sub.id, params={"invoice_now": True})
    assert canceled.status == "canceled"
    final = stripe_client.v1.invoices.retrieve(canceled.latest_invoice)
    assert final.status == "draft" and _amounts(final) == [(1400, 200)]
    stripe_emulator.advance_clock(GRACE)
    assert stripe_client.v1.invoices.retrieve(final.id).status == "paid"

    stripe_client.v1.customers.update(catalog.customer.id, params={"name": "second"})
    again = _subscribe_again(catalog, stripe_client)
    _usage(stripe_client, catalog, 1400, "discarded")
    stripe_emulator.advance_clock(DAY)
    canceled = stripe_client.v1.subscriptions.cancel(again.id)
    assert canceled.latest_invoice == again.latest_invoice  # no final invoice: usage discarded


def test_cancel_now_with_prorate_credits_the_unused_time(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    start, end = (
        _items(stripe_client, sub)[0].current_period_start,
        _items(stripe_client, sub)[0].current_period_end,
    )
    stripe_emulator.advance_clock((end - start) // 2)
    canceled = stripe_client.v1.subscriptions.cancel(
        sub.id, params={"invoice_now": True, "prorate": True}
    )
    final = stripe_client.v1.invoices.retrieve(canceled.latest_invoice)
    credit = next(li for li in final.lines.data if li.amount < 0)
    assert credit.parent.subscription_item_details.proration is True
    assert credit.amount == -round(2900 * (end - stripe_emulator.now) / (end - start))
    stripe_emulator.advance_clock(GRACE)
    final = stripe_client.v1.invoices.retrieve(final.id)
    assert final.amount_due == 0 and final.ending_balance == final.total
    assert stripe_client.v1.customers.retrieve(catalog.customer.id).balance == final.total


def _subscribe_again(catalog, client):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": catalog.customer.id,
            "line_items": [
                {"price": catalog.base.id, "quantity": 1},
                {"price": catalog.metered.id},
            ],
            "success_url": "http://portal.test/ok",
        }
    )
    requests.post(session.url + "/pay", allow_redirects=False, timeout=5)
    return client.v1.subscriptions.retrieve(
        client.v1.checkout.sessions.retrieve(session.id).subscription
    )
