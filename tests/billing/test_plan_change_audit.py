"""billing.services.plan_changes: a plan the developer bought or switched to, or one Stripe
changed, is written to the audit log (who, what, from → to, why), through the real flows:
Checkout and the webhooks from the Stripe emulator, the tier switch of the pricing page."""

from datetime import timedelta

import pytest

from billing.services.switch import tier_switch_apply, tier_switch_request
from billing.stripe_api import stripe_client
from portal.models import AuditEntry
from tests.billing.conftest import checkout_and_pay

pytestmark = pytest.mark.django_db

ACTION = "billing.plan_change"


def plan_entries(account) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(account=account, action=ACTION).order_by("created", "pk"))


def test_subscribing_through_checkout_is_recorded_as_the_customers_doing(
    owner_client, owner, account, catalog, webhooks, admin_client
):
    checkout_and_pay(owner_client, catalog.pro)
    webhooks.deliver()  # checkout.session.completed, customer.subscription.created, invoice.paid…

    (entry,) = plan_entries(account)
    assert entry.actor == owner
    assert entry.before["tier"] == "free" and entry.before["subscribed_tier"] is None
    assert entry.after["tier"] == "pro" == entry.after["subscribed_tier"]
    assert entry.after["payment_status"] == "active"
    account.refresh_from_db()
    assert entry.after["subscription"] == account.stripe_subscription_id
    assert "subscribed through Checkout" in entry.reason

    log = admin_client.get("/admin/portal/auditentry/", {"action": ACTION}).content.decode()
    assert f"{owner.email} (customer)" in log


def test_a_tier_switch_the_developer_asked_for_names_them_and_both_tiers(
    subscribed, owner, catalog, clock, webhooks
):
    switch = tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)
    tier_switch_apply(switch_id=switch.pk, now=clock.to(switch.effective_at + timedelta(minutes=3)))
    webhooks.deliver()  # customer.subscription.updated: already applied, nothing more to record

    entries = plan_entries(subscribed)
    assert len(entries) == 2  # Checkout's, then the switch's
    switched = entries[-1]
    assert switched.actor == owner
    assert (switched.before["subscribed_tier"], switched.after["subscribed_tier"]) == (
        "pro",
        "team",
    )
    assert (switched.before["tier"], switched.after["tier"]) == ("pro", "team")
    assert f"Tier switch #{switch.pk} asked for on the pricing page" in switched.reason


def test_a_change_stripe_decided_is_recorded_as_the_systems(subscribed, webhooks):
    stripe_client().v1.subscriptions.cancel(subscribed.stripe_subscription_id)
    webhooks.deliver()

    ended = plan_entries(subscribed)[-1]
    assert ended.actor is None
    assert (ended.before["tier"], ended.after["tier"]) == ("pro", "free")
    assert (ended.before["subscribed_tier"], ended.after["subscribed_tier"]) == ("pro", None)
    assert "customer.subscription.deleted" in ended.reason
    assert ended.reason.endswith("is canceled")


def test_an_event_that_changes_no_plan_writes_no_entry(subscribed, webhooks):
    before = AuditEntry.objects.count()

    stripe_client().v1.subscriptions.update(
        subscribed.stripe_subscription_id, params={"metadata": {"note": "nothing to do with plans"}}
    )
    webhooks.deliver()

    assert AuditEntry.objects.count() == before
