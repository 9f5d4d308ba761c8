"""The upcoming invoice: ``POST /v1/invoices/create_preview`` shows the invoice a subscription's
period will end with, as it stands ("Create a preview invoice",
https://docs.stripe.com/api/invoices/create_preview: "all the charges that are pending,
including subscription renewal charges, invoice item charges"), and stores nothing."""

from __future__ import annotations

import pytest
import stripe

GRACE = 3600


def _usage(client, catalog, value, identifier):
    client.v1.billing.meter_events.create(
        params={
            "event_name": "api_calls",
            "identifier": identifier,
            "payload": {"stripe_customer_id": catalog.customer.id, "value": str(value)},
        }
    )


def _preview(client, **params):
    return client.v1.invoices.create_preview(params=params)


def _lines(invoice):
    return sorted((line.quantity, line.amount) for line in invoice.lines.data)


def test_the_preview_is_the_renewal_as_it_stands_and_stores_nothing(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    _usage(stripe_client, catalog, 1234, "u1")

    preview = _preview(stripe_client, subscription=sub.id)

    # 234 calls past the 1,000 included, at half a cent; the next month's $29 base.
    assert _lines(preview) == [(1, 2900), (1234, 117)]
    assert (preview.total, preview.amount_due) == (3017, 3017)
    assert preview.billing_reason == "subscription_cycle"
    item = stripe_client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert (preview.period_start, preview.period_end) == (
        item.current_period_start,
        item.current_period_end,
    )
    assert preview.status == "draft" and preview.number is None
    # A preview is not an invoice: it is in no list, and the customer's numbering is untouched.
    assert [i.billing_reason for i in stripe_client.v1.invoices.list().data] == [
        "subscription_create"
    ]

    renewal_time = item.current_period_end + GRACE
    stripe_emulator.advance_clock(to=renewal_time)
    renewal = stripe_client.v1.invoices.list(params={"subscription": sub.id}).data[0]
    assert (renewal.total, _lines(renewal)) == (preview.total, _lines(preview))
    assert renewal.number.endswith("-0002")


def test_a_customer_gives_its_live_subscription(catalog, stripe_client, subscribe):
    sub = subscribe(catalog)
    _usage(stripe_client, catalog, 1001, "u1")

    preview = _preview(stripe_client, customer=catalog.customer.id)

    assert preview.parent.subscription_details.subscription == sub.id
    assert preview.total == 2900 + 1  # 0.5 cent rounds half up to 1 cent


def test_the_usage_of_a_price_switched_away_from_is_on_the_preview(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    _usage(stripe_client, catalog, 1400, "before")
    metered_item = stripe_client.v1.subscriptions.retrieve(sub.id)["items"].data[1]
    per_call = stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "product": catalog.product.id,
            "unit_amount_decimal": "0.25",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": catalog.meter.id},
        }
    )
    stripe_emulator.advance_clock(60)
    stripe_client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": metered_item.id, "price": per_call.id}]}
    )
    stripe_emulator.advance_clock(60)
    _usage(stripe_client, catalog, 100, "after")

    preview = _preview(stripe_client, subscription=sub.id)

    # The old price's 400 calls past the included (the pending invoice item, $2.00) and the
    # new price's 100 calls at a quarter cent (25 cents).
    assert _lines(preview) == [(1, 2900), (100, 25), (1400, 200)]
    assert preview.total == 3125


def test_a_subscription_ending_with_its_period_previews_no_next_base(
    catalog, stripe_client, subscribe
):
    sub = subscribe(catalog)
    stripe_client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    _usage(stripe_client, catalog, 1010, "u1")

    preview = _preview(stripe_client, subscription=sub.id)

    assert _lines(preview) == [(1010, 5)]


def test_without_a_live_subscription_there_is_no_upcoming_invoice(catalog, stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _preview(stripe_client, customer=catalog.customer.id)
    assert refused.value.code == "invoice_upcoming_none"

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        _preview(stripe_client, subscription="sub_nope")
    assert unknown.value.code == "resource_missing"
