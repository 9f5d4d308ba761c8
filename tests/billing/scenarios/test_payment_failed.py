"""The renewal payment fails: the account keeps Pro through the grace period
(billing/services/grace.py), drops to the free tier after it, and is restored by itself when the
developer pays the open invoice. The failed invoice is the one that gets paid: the period's usage
is billed once, and the usage of the next period (while the payment was due) on its own invoice.

Stripe: a failed renewal leaves the invoice open and the subscription ``past_due`` until the
invoice is paid ("How subscriptions work > Payment status",
https://docs.stripe.com/billing/subscriptions/overview#payment-status)."""

from datetime import timedelta

import pytest
import requests

from billing.tasks import account_enforce_grace_task
from tests.billing.scenarios.scenario import busy_stretch, hour_floor, metered_cents

pytestmark = pytest.mark.django_db


def test_a_failed_renewal_paid_after_the_grace_period_bills_the_usage_once(
    scenario, django_capture_on_commit_callbacks, mailoutbox
):
    pro, free, api, clock = scenario.tiers.pro, scenario.tiers.free, scenario.api, scenario.clock
    started = scenario.upgrade(pro)
    end = scenario.period_end()

    busy = clock.to(hour_floor(started) + timedelta(days=4, hours=2))
    assert busy_stretch(api, clock, pro, computes=12) == 120
    scenario.report_the_hour_of(busy)
    clock.to(end - timedelta(minutes=5))
    assert api.lookup(9) == [200] * 9
    first_period = api.admitted["pro"]

    # The card now declines: the renewal fails when Stripe finalizes it.
    customer_id = scenario.refresh().stripe_customer.id
    scenario.emulator.set_card_declines(customer_id, True)
    with django_capture_on_commit_callbacks(execute=True):
        scenario.close_period(end)
    account = scenario.refresh()
    assert (account.payment_status, account.tier) == ("past_due", pro)
    assert account.grace_until is not None
    assert len([m for m in mailoutbox if "payment failed" in m.subject.lower()]) == 1
    failed = scenario.invoices()[-1]
    assert (failed.status, failed.amount_paid) == ("open", 0)
    assert failed.amount_due == pro.base_price_cents + metered_cents(pro, first_period)

    # During the grace period the developer keeps Pro, and its calls are the next period's.
    api.segment = "next period"
    grace = clock.to(hour_floor(end) + timedelta(days=2, hours=1))
    assert api.compute(8) == [200] * 8
    scenario.report_the_hour_of(grace)

    # The grace period ends: the hourly job moves the account to the free tier.
    clock.to(account.grace_until + timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert account_enforce_grace_task.delay().get() == 1
    assert scenario.refresh().tier == free

    # A new card in the customer portal, then "Pay" on the open invoice's page.
    clock.advance(hours=3)
    scenario.customer_portal("update_card")
    [open_invoice] = [
        i for i in scenario.browser.get("/billing/").context["invoices"] if i.status == "open"
    ]
    assert open_invoice.id == failed.id
    paid = requests.post(open_invoice.hosted_invoice_url + "/pay", allow_redirects=False, timeout=5)
    assert paid.status_code == 303, paid.text
    scenario.webhooks.deliver()
    account = scenario.refresh()
    assert (account.payment_status, account.tier, account.grace_until) == ("active", pro, None)

    # Back on Pro; the next period closes with its own usage only.
    restored = clock.advance(days=1)
    assert api.lookup(20) == [200] * 20
    scenario.report_the_hour_of(restored)
    next_end = scenario.period_end()
    scenario.close_period(next_end)

    invoices = scenario.invoices()
    first = next(i for i in invoices if i.id == failed.id)
    assert first.status == "paid"
    assert first.units(pro) == first_period == 60 + 60 + 9
    assert first.amount_paid == pro.base_price_cents + metered_cents(pro, first_period) == 2900 + 10
    second = invoices[-1]
    assert second.of(pro)[0].period_end == int(next_end.timestamp())
    assert second.units(pro) == api.admitted["next period"] == 40 + 20
    assert second.amount_paid == pro.base_price_cents + metered_cents(pro, 60) == 2900
    # Each unit on exactly one invoice.
    assert sum(invoice.units(pro) for invoice in invoices) == api.total
    assert scenario.meter_total() == api.total
