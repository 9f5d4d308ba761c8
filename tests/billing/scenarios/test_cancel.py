"""Cancelling: at the period's end in the customer portal, or at once by an operator with a final
invoice. Either way the final invoice bills exactly the usage admitted while the subscription
ran, and nothing used on the free tier afterwards is ever billed.

Stripe: "Any metered usage is charged for in a final invoice when the subscription cancels at
the end of the billing period"; cancelling at once, ``invoice_now`` "will generate a final
invoice that invoices for any un-invoiced metered usage and new/pending proration invoice
items" and ``prorate`` (a credit for the unused time) defaults to false (Cancel a subscription,
https://docs.stripe.com/api/subscriptions/cancel)."""

from datetime import timedelta

import pytest

from billing.stripe_api import stripe_client
from tests.billing.scenarios.scenario import (
    FINALIZATION_GRACE,
    HOURLY_RUN,
    busy_stretch,
    hour_floor,
    metered_cents,
)

pytestmark = pytest.mark.django_db


def test_cancel_at_period_end_bills_the_periods_usage_in_a_final_invoice(scenario):
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock
    started = scenario.upgrade(pro)
    end = scenario.period_end()

    early = clock.to(hour_floor(started) + timedelta(days=2, hours=5))
    assert busy_stretch(api, clock, pro, computes=12) == 120
    scenario.report_the_hour_of(early)

    clock.to(hour_floor(started) + timedelta(days=12, minutes=20))
    scenario.customer_portal("cancel_at_period_end")
    account = scenario.refresh()
    assert (account.tier, account.cancel_at_period_end) == (pro, True)

    # Still Pro until the end: calls after the click, up to the last minutes, are billed.
    later = clock.to(hour_floor(started) + timedelta(days=20, hours=1))
    assert api.lookup(41) == [200] * 41
    scenario.report_the_hour_of(later)
    clock.to(end - timedelta(minutes=3))
    assert api.lookup(12) == [200] * 12
    billed = api.admitted["pro"]

    scenario.close_period(end)
    account = scenario.refresh()
    assert (account.tier, account.payment_status) == (scenario.tiers.free, "canceled")

    # Back on the free tier: used, never billed.
    api.segment = "free"
    clock.advance(hours=2)
    assert api.lookup(5) == [200] * 5
    clock.advance(hours=1, minutes=10)
    scenario.beat.hourly_report()
    scenario.beat.period_close_report()

    [checkout, final] = scenario.invoices()
    assert checkout.amount_paid == pro.base_price_cents
    assert final.of(pro)[0].period_end == int(end.timestamp())
    assert final.units(pro) == billed == 60 + 60 + 41 + 12
    assert final.cents(pro, metered=False) == 0  # no next period to pay for
    assert final.cents(pro) == metered_cents(pro, billed) == 26  # 73 x 0.35¢ = 25.55¢
    assert final.amount_due == 26
    assert scenario.meter_total() == billed


def test_an_operator_cancelling_now_with_invoice_now_bills_the_usage_so_far(scenario):
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock
    started = scenario.upgrade(pro)

    early = clock.to(hour_floor(started) + timedelta(days=2, hours=3))
    assert busy_stretch(api, clock, pro, computes=10) == 110
    scenario.report_the_hour_of(early)

    # Minutes before the operator cancels: their hour is still open.
    cancel_at = hour_floor(started) + timedelta(days=5, minutes=40)
    clock.to(cancel_at - timedelta(minutes=8))
    assert api.lookup(27) == [200] * 27
    billed = api.admitted["pro"]
    clock.to(cancel_at)
    # As an operator does it (the Dashboard, or the API): cancel now with a final invoice.
    stripe_client().v1.subscriptions.cancel(
        scenario.account.stripe_subscription_id, params={"invoice_now": True}
    )
    scenario.webhooks.deliver()
    account = scenario.refresh()
    assert (account.tier, account.payment_status) == (scenario.tiers.free, "canceled")

    # The free tier's calls after the cancel are never billed.
    api.segment = "free"
    clock.advance(minutes=3)
    assert api.lookup(6) == [200] * 6
    # The period-close job reports the last stretch within Stripe's grace hour.
    clock.to(cancel_at + HOURLY_RUN)
    scenario.beat.period_close_report()
    clock.to(cancel_at + FINALIZATION_GRACE + timedelta(minutes=1))
    scenario.webhooks.deliver()
    clock.advance(hours=2)
    scenario.beat.hourly_report()

    [checkout, final] = scenario.invoices()
    assert checkout.amount_paid == pro.base_price_cents
    assert final.status != "draft"
    assert final.units(pro) == billed == 60 + 50 + 27
    assert final.cents(pro, metered=False) == 0  # prorate defaults to false: no credit
    assert final.cents(pro) == metered_cents(pro, billed) == 13  # 37 x 0.35¢ = 12.95¢
    assert final.amount_due == 13
    assert scenario.meter_total() == billed
