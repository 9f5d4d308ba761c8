"""billing.services.subscriptions_reconcile: Stripe is re-read and lost webhooks repaired."""

import pytest
import stripe

from billing.services.reconcile import subscriptions_reconcile
from billing.stripe_api import stripe_client
from billing.tasks import subscriptions_reconcile_task
from tests.billing.conftest import checkout_and_pay


@pytest.mark.django_db
def test_an_upgrade_whose_webhooks_were_lost_is_repaired(owner_client, account, catalog, webhooks):
    checkout_and_pay(owner_client, catalog.pro)  # and Stripe's events never arrive

    report = subscriptions_reconcile()

    account.refresh_from_db()
    assert (account.tier, account.payment_status) == (catalog.pro, "active")
    assert account.stripe_subscription_id.startswith("sub_")
    assert [change.account_id for change in report] == [account.pk]
    assert report[0].changes["tier_id"] == (catalog.free.pk, catalog.pro.pk)
    assert "tier_id" in report[0].describe()


@pytest.mark.django_db
def test_a_lost_cancellation_is_repaired(subscribed, catalog, webhooks):
    # Canceled on Stripe (the Dashboard); its webhook never arrives.
    stripe_client().v1.subscriptions.cancel(subscribed.stripe_subscription_id)

    subscriptions_reconcile()

    subscribed.refresh_from_db()
    assert (subscribed.tier, subscribed.payment_status) == (catalog.free, "canceled")


@pytest.mark.django_db
def test_accounts_in_step_are_left_alone(subscribed, outsider, catalog):
    version = subscribed.cache_version

    assert subscriptions_reconcile() == []

    subscribed.refresh_from_db()
    assert subscribed.tier == catalog.pro
    assert subscribed.cache_version == version


@pytest.mark.django_db
def test_the_task_reports_how_many_accounts_it_repaired(owner_client, account, catalog, webhooks):
    checkout_and_pay(owner_client, catalog.team)

    assert subscriptions_reconcile_task.delay().get() == 1
    account.refresh_from_db()
    assert account.tier == catalog.team


@pytest.mark.django_db
def test_stripe_unreachable_changes_nothing(subscribed, catalog, stripe_api):
    stripe_api.inject_fault("/v1/subscriptions", status=500, count=1)

    with pytest.raises(stripe.APIError):
        subscriptions_reconcile()

    subscribed.refresh_from_db()
    assert subscribed.tier == catalog.pro
