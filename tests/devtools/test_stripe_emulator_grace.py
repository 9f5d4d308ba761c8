"""The invoice finalization grace period: a renewal invoice is a draft for an hour after the period
ends, and usage reported in that hour with a timestamp inside the period is billed on it.
"Configure an invoice finalization grace period",
https://docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period."""

from __future__ import annotations

import pytest
import stripe

GRACE = 3600


def _usage(client, catalog, value, timestamp, identifier):
    client.v1.billing.meter_events.create(
        params={
            "event_name": "api_calls",
            "identifier": identifier,
            "timestamp": timestamp,
            "payload": {"stripe_customer_id": catalog.customer.id, "value": str(value)},
        }
    )


def _period(client, sub):
    item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    return item.current_period_start, item.current_period_end


def _metered_line(invoice, catalog):
    return next(
        li for li in invoice.lines.data if li.pricing.price_details.price == catalog.metered.id
    )


def test_the_renewal_invoice_is_a_draft_for_an_hour_and_bills_late_usage(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    start, end = _period(stripe_client, sub)
    _usage(stripe_client, catalog, 1500, start + 60, "in-period")
    stripe_emulator.advance_clock(to=end)
    draft = stripe_client.v1.invoices.list(params={"subscription": sub.id}).data[0]
    assert (draft.status, draft.billing_reason, draft.number) == (
        "draft",
        "subscription_cycle",
        None,
    )
    assert draft.automatically_finalizes_at == end + GRACE
    assert (draft.period_start, draft.period_end) == (start, end)
    assert _metered_line(draft, catalog).quantity == 1500
    # The subscription already moved on to its next period.
    assert _period(stripe_client, sub)[0] == end
    # Reported during the grace hour: one event of the closed period, one of the new one.
    stripe_emulator.advance_clock(30 * 60)
    _usage(stripe_client, catalog, 500, end - 10, "late-but-in-period")
    _usage(stripe_client, catalog, 7, end + 60, "next-period")
    stripe_emulator.advance_clock(to=end + GRACE - 60)
    assert stripe_client.v1.invoices.retrieve(draft.id).status == "draft"
    stripe_emulator.advance_clock(to=end + GRACE)
    final = stripe_client.v1.invoices.retrieve(draft.id)
    assert final.status == "paid" and final.number
    assert final.status_transitions.finalized_at == end + GRACE
    line = _metered_line(final, catalog)
    assert line.quantity == 2000  # 1,000 over the included 1,000, at 0.5 cent
    assert line.amount == 500
    assert final.total == 2900 + 500
    # Usage reported after finalization for the closed period is billed nowhere.
    _usage(stripe_client, catalog, 100, end - 5, "too-late")
    assert _metered_line(stripe_client.v1.invoices.retrieve(draft.id), catalog).quantity == 2000
    renewal = [e for e in stripe_emulator.events() if e["created"] >= end]
    assert [(e["type"], e["created"]) for e in renewal if e["type"] != "invoice.updated"][:5] == [
        ("customer.subscription.updated", end),
        ("invoice.created", end),
        ("invoice.finalized", end + GRACE),
        ("invoice.paid", end + GRACE),
        ("invoice.payment_succeeded", end + GRACE),
    ]


def test_a_declining_card_fails_only_when_the_draft_is_finalized(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    _, end = _period(stripe_client, sub)
    stripe_emulator.set_card_declines(catalog.customer.id, True)
    stripe_emulator.advance_clock(to=end)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert stripe_emulator.events("invoice.payment_failed") == []
    stripe_emulator.advance_clock(GRACE)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "past_due"


def test_a_draft_can_be_finalized_or_paid_early(catalog, stripe_client, stripe_emulator, subscribe):
    sub = subscribe(catalog)
    _, end = _period(stripe_client, sub)
    stripe_emulator.advance_clock(to=end)
    draft = stripe_client.v1.invoices.list(params={"subscription": sub.id}).data[0]
    finalized = stripe_client.v1.invoices.finalize_invoice(draft.id)
    assert finalized.status == "paid" and finalized.automatically_finalizes_at is None
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.finalize_invoice(draft.id)


def test_cancel_at_period_end_bills_the_last_usage_after_the_grace_hour(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    start, end = _period(stripe_client, sub)
    stripe_client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    _usage(stripe_client, catalog, 1200, start + 60, "last-month")
    stripe_emulator.advance_clock(to=end)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    final = stripe_client.v1.invoices.list(params={"subscription": sub.id}).data[0]
    assert final.status == "draft"
    _usage(stripe_client, catalog, 800, end - 1, "reported-late")
    stripe_emulator.advance_clock(GRACE)
    final = stripe_client.v1.invoices.retrieve(final.id)
    assert final.status == "paid"
    assert [li.quantity for li in final.lines.data] == [2000]
    assert final.total == 500
