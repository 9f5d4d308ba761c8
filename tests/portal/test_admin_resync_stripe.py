"""Admin action: re-sync accounts from Stripe (billing's reconcile, for the chosen accounts)."""

import pytest
from django.test import Client

from portal.models import AuditEntry
from tests.billing import conftest as billing_fixtures
from tests.billing.conftest import checkout_and_pay
from tests.factories import AccountFactory
from tests.portal.admin_actions import messages_of

# The billing tests' emulator fixtures: tiers pushed to Stripe, webhooks held back until delivered.
stripe_api = billing_fixtures.stripe_api
catalog = billing_fixtures.catalog
webhooks = billing_fixtures.webhooks


def resync_entries():
    # The catalog fixture's tier push writes entries of its own.
    return AuditEntry.objects.filter(action="account.stripe_resync")


def resync(client, accounts):
    return client.post(
        "/admin/portal/account/",
        {"action": "resync_stripe", "_selected_action": [a.pk for a in accounts], "index": 0},
        follow=True,
    )


@pytest.mark.django_db
def test_a_lost_upgrade_is_repaired_with_one_audit_entry(
    admin_client,
    admin_user,
    owner_client,
    account,
    catalog,
    webhooks,
):
    checkout_and_pay(owner_client, catalog.pro)  # paid, but Stripe's events never arrived
    account.refresh_from_db()
    assert account.tier == catalog.free

    response = resync(admin_client, [account])

    account.refresh_from_db()
    assert (account.tier, account.payment_status) == (catalog.pro, "active")
    entry = resync_entries().get()
    assert (entry.action, entry.account, entry.actor) == (
        "account.stripe_resync",
        account,
        admin_user,
    )
    assert (entry.before["tier"], entry.after["tier"]) == ("free", "pro")
    assert (entry.before["payment_status"], entry.after["payment_status"]) == ("none", "active")
    assert entry.after["stripe_subscription_id"] == account.stripe_subscription_id
    message = next(m for m in messages_of(response) if m.startswith("Re-synced"))
    assert "tier free → pro" in message


@pytest.mark.django_db
def test_only_the_chosen_accounts_are_re_read(
    admin_client,
    owner_client,
    account,
    catalog,
    webhooks,
):
    checkout_and_pay(owner_client, catalog.pro)
    other_client = Client()
    other = AccountFactory()
    other_client.force_login(other.owner)
    checkout_and_pay(other_client, catalog.team)

    resync(admin_client, [account])

    other.refresh_from_db()
    assert other.tier == catalog.free
    assert list(resync_entries().values_list("account", flat=True)) == [account.pk]


@pytest.mark.django_db
def test_an_account_in_step_is_still_audited_as_checked(
    admin_client,
    owner_client,
    account,
    catalog,
    webhooks,
):
    checkout_and_pay(owner_client, catalog.pro)
    webhooks.deliver()

    response = resync(admin_client, [account])

    entry = resync_entries().get()
    assert entry.before == entry.after
    assert any("already in step" in m for m in messages_of(response))


@pytest.mark.django_db
def test_an_account_without_a_stripe_customer_is_skipped(admin_client, stripe_api):
    account = AccountFactory()

    response = resync(admin_client, [account])

    assert not resync_entries().exists()
    assert any("No Stripe customer" in m for m in messages_of(response))


@pytest.mark.django_db
def test_stripe_unreachable_changes_nothing_and_says_so(
    admin_client,
    owner_client,
    account,
    catalog,
    webhooks,
    stripe_api,
):
    checkout_and_pay(owner_client, catalog.pro)
    stripe_api.inject_fault("/v1/subscriptions", status=500, count=10)

    response = resync(admin_client, [account])

    account.refresh_from_db()
    assert account.tier == catalog.free
    assert not resync_entries().exists()
    assert any(m.startswith("Re-sync from Stripe failed") for m in messages_of(response))
