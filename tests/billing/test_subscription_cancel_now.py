"""The account admin's "Cancel the subscription now": billing stops at the next whole minute,
the usage before it reaches Stripe's final invoice, the usage after it is never billed."""

from datetime import timedelta

import pytest
from django.conf import settings

from billing.models import MeterReport, TierSwitch
from billing.services.reports import usage_report_run
from billing.services.switch import subscription_cancel_now, tier_switch_apply
from billing.stripe_api import stripe_client
from portal.models import AuditEntry
from tests.billing.conftest import rolled_up
from tests.factories import StaffUserFactory
from tests.portal.admin_actions import apply_action

pytestmark = pytest.mark.django_db


def test_an_operator_cancels_from_the_account_list(admin_client, subscribed):
    response = apply_action(admin_client, "cancel_subscription_now", [subscribed], reason="abuse")

    assert "Billing ends at the next minute for" in response.content.decode()
    switch = TierSwitch.objects.get(account=subscribed)
    assert (switch.to_tier, switch.status) == (None, TierSwitch.Status.SCHEDULED)
    entry = AuditEntry.objects.get(action="account.subscription_cancel")
    assert entry.account == subscribed and entry.reason == "abuse"


def test_billing_ends_at_the_next_minute_and_its_usage_is_on_the_final_invoice(
    admin_user, subscribed, catalog, clock, webhooks
):
    subscription_cancel_now(account=subscribed, actor=admin_user, now=clock.now)
    switch = TierSwitch.objects.get(account=subscribed)
    end = switch.effective_at
    rolled_up(subscribed, end - timedelta(minutes=1), 21)
    rolled_up(subscribed, end + timedelta(minutes=1), 9)  # after billing ended: never billed

    switch = tier_switch_apply(switch_id=switch.pk, now=clock.to(end + timedelta(seconds=135)))

    assert switch.status == TierSwitch.Status.APPLIED
    subscribed.refresh_from_db()
    assert (subscribed.tier, subscribed.payment_status) == (catalog.free, "canceled")
    assert subscribed.period_start == end
    subscription = stripe_client().v1.subscriptions.retrieve(subscribed.stripe_subscription_id)
    assert subscription.status == "canceled"
    usage_report_run(now=clock.to(end + timedelta(minutes=10)))
    assert list(MeterReport.objects.values_list("window_end", "units")) == [(end, 21)]
    total = webhooks.emulator.meter_event_total(
        subscribed.stripe_customer.id, settings.STRIPE_METER_EVENT_NAME
    )
    assert total == 21


def test_staff_without_the_permission_do_not_see_it(client, subscribed):
    client.force_login(StaffUserFactory(permissions=["portal.view_account", "portal.change_tier"]))
    page = client.get("/admin/portal/account/").content.decode()

    assert "cancel_subscription_now" not in page
