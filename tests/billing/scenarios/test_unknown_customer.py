"""A Pro developer's Stripe customer is deleted in the Dashboard mid-period: the next hourly report
is accepted by Stripe's create call and refused afterwards (``meter_event_customer_not_found``,
told by the thin event ``v1.billing.meter.error_report_triggered``); the admin shows the report
rejected. The developer subscribes again (Checkout finds the old customer gone and makes a new
one), and the operator re-sends the account's rejected reports from the admin. Every unit the
developer was admitted on Pro is invoiced exactly once across the two subscriptions, to the cent.

Stripe: deleting a customer "also immediately cancels any active subscriptions on the customer"
(Delete a customer, https://docs.stripe.com/api/customers/delete); events for an unknown
customer are refused asynchronously ("Record usage for billing with the API",
https://docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api). A new
subscription's metered price bills usage dated from its start only ("Manage your usage-based
billing setup", https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup):
the re-sent report is dated at the new subscription's start (billing.services.reports,
``_billed_from``)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from billing.models import MeterReport, StripeThinEvent
from billing.services.webhook_endpoint import event_destination_ensure
from billing.stripe_api import stripe_client
from portal.models import AuditEntry
from tests.billing.scenarios.scenario import busy_stretch, hour_floor, metered_cents
from tests.portal.admin_actions import messages_of

pytestmark = pytest.mark.django_db

REPORTS = reverse("admin:billing_meterreport_changelist")
ACCOUNTS = reverse("admin:portal_account_changelist")


def delete_in_the_dashboard(customer_id: str, subscription_id: str) -> None:
    """What deleting the customer in the Dashboard does on Stripe: its subscription is cancelled
    at once, then the customer is gone. The emulator's customer delete does not cancel the
    subscription itself, so the cancel is spelled out first, with Stripe's defaults (no final
    invoice, Cancel a subscription, https://docs.stripe.com/api/subscriptions/cancel; the
    docs do not say whether a deletion makes one, and here it would bill nothing: no usage of
    the cancelled period reached Stripe before the deletion)."""
    client = stripe_client()
    client.v1.subscriptions.cancel(subscription_id)
    client.v1.customers.delete(customer_id)


def test_a_report_for_a_deleted_customer_is_repaired_onto_the_new_subscription(
    scenario, admin_client, admin_user
):
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock
    # The portal's event destination, through which Stripe's meter error reports arrive.
    event_destination_ensure()
    started = scenario.upgrade(pro)
    first_end = scenario.period_end()

    # The first period: used, reported, and invoiced at its end as usual.
    api.segment = "first period"
    early = clock.to(hour_floor(started) + timedelta(days=2, hours=5))
    assert busy_stretch(api, clock, pro, computes=12) == 120
    scenario.report_the_hour_of(early)
    scenario.close_period(first_end)
    [_, first_renewal] = scenario.invoices()
    assert (first_renewal.billing_reason, first_renewal.status) == ("subscription_cycle", "paid")
    assert first_renewal.units(pro) == 120
    assert first_renewal.cents(pro) == metered_cents(pro, 120) == 7  # 20 x 0.35¢

    # Three days into the second period: calls, then, before their hour is reported, someone
    # deletes the developer's customer in the Stripe Dashboard.
    account = scenario.refresh()
    old_customer, old_subscription = account.stripe_customer.id, account.stripe_subscription_id
    deleted_at = hour_floor(first_end) + timedelta(days=3, minutes=40)
    api.segment = "before the deletion"
    clock.to(deleted_at - timedelta(minutes=25))
    assert api.lookup(45) == [200] * 45
    clock.advance(minutes=2)
    assert api.compute(9) == [200] * 9
    clock.to(deleted_at)
    delete_in_the_dashboard(old_customer, old_subscription)
    scenario.webhooks.deliver()
    account = scenario.refresh()
    assert (account.tier, account.payment_status) == (scenario.tiers.free, "canceled")

    # On the free tier until they notice: used, never billed.
    api.segment = "free"
    clock.advance(minutes=5)
    assert api.lookup(3) == [200] * 3

    # The hourly report sends the subscription's last stretch to the deleted customer: Stripe
    # takes the call, then refuses the event and says so with a thin event.
    scenario.report_the_hour_of(deleted_at)
    [rejected] = MeterReport.objects.filter(account=account, status="rejected")
    refused = rejected.identifier
    assert (rejected.units, rejected.stripe_customer_id) == (90, old_customer)
    assert rejected.rejections[0]["code"] == "meter_event_customer_not_found"
    assert StripeThinEvent.objects.filter(
        type="v1.billing.meter.error_report_triggered", processed__isnull=False
    ).exists()
    assert scenario.emulator.meter_event_total(old_customer, pro.stripe_meter_id) == 120

    # The operator sees it in the admin: rejected, with Stripe's reason.
    page = admin_client.get(REPORTS, {"status__exact": "rejected"}).content.decode()
    assert refused in page
    assert "Rejected by Stripe — needs an operator" in page
    assert "Stripe refused it after accepting it: meter_event_customer_not_found" in page

    # The next day the developer subscribes again: Checkout finds the customer gone and makes
    # a new one.
    clock.to(deleted_at + timedelta(days=1))
    second_start = scenario.upgrade(pro)
    second_end = scenario.period_end()
    account = scenario.refresh()
    new_customer = account.stripe_customer.id
    assert new_customer != old_customer

    # The operator re-sends the account's rejected reports from the account list.
    response = admin_client.post(
        ACCOUNTS,
        {"action": "resend_reports", "_selected_action": [account.pk], "index": 0},
        follow=True,
    )
    assert any(m.startswith("Re-sent the failed usage reports of") for m in messages_of(response))
    rejected.refresh_from_db()
    assert (rejected.status, rejected.identifier) == ("sent", f"{refused}-r1")
    assert rejected.stripe_customer_id == new_customer
    # Dated when the new subscription began, so that its first invoice bills it.
    assert rejected.event_time == second_start
    entry = AuditEntry.objects.get(action="account.reports_resend")
    assert entry.actor == admin_user
    assert entry.after == {"reports": {refused: "sent"}}

    # The new subscription's own usage.
    api.segment = "second subscription"
    busy = clock.to(hour_floor(second_start) + timedelta(days=4, minutes=10))
    assert busy_stretch(api, clock, pro, computes=8) == 100
    scenario.report_the_hour_of(busy)
    scenario.close_period(second_end)

    [checkout, second_renewal] = scenario.invoices()
    assert (checkout.billing_reason, checkout.amount_paid) == (
        "subscription_create",
        pro.base_price_cents,
    )
    assert (second_renewal.billing_reason, second_renewal.status) == (
        "subscription_cycle",
        "paid",
    )
    assert second_renewal.of(pro)[0].period_end == int(second_end.timestamp())
    # The repaired 90 units with the new subscription's 100: one period, one included 100.
    assert second_renewal.units(pro) == 90 + 100
    assert second_renewal.cents(pro) == metered_cents(pro, 190) == 32  # 90 x 0.35¢ = 31.5¢
    assert second_renewal.amount_paid == pro.base_price_cents + 32

    # Every unit admitted on Pro, once, across both subscriptions; the free calls never.
    paid = api.total - api.admitted["free"]
    assert paid == 120 + 90 + 100
    assert first_renewal.units(pro) + second_renewal.units(pro) == paid
    assert scenario.meter_total() == 90 + 100
    assert scenario.emulator.meter_event_total(old_customer, pro.stripe_meter_id) == 120

    # The developer sees it on the billing page: the base and the 32 cents.
    assert "$29.32" in scenario.browser.get("/billing/").content.decode()
