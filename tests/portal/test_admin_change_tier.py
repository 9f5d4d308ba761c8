"""Admin action: move accounts to any tier, private ones included."""

import pytest

from portal.models import AuditEntry
from tests.factories import AccountFactory, ApiKeyFactory, PaidTierFactory, TierFactory
from tests.portal.admin_actions import api_get, apply_action, choose_action, messages_of, run_action


@pytest.fixture
def custom_tier(db):
    return TierFactory(
        slug="acme-custom", name="Acme custom", is_public=False, included_units=250_000
    )


@pytest.mark.django_db
def test_the_form_offers_private_tiers(admin_client, custom_tier):
    account = AccountFactory()

    response = choose_action(admin_client, "change_tier", [account])

    choices = [str(label) for _, label in response.context["form"].fields["tier"].choices]
    assert "Acme custom" in choices


@pytest.mark.django_db
def test_moving_changes_limits_at_once_with_one_audit_entry(
    admin_client, admin_user, client, custom_tier
):
    key = ApiKeyFactory()
    account = key.account
    before = api_get(client, key.plaintext).json()  # cached now
    assert before["tier"]["slug"] == "free"

    response = run_action(
        admin_client, "change_tier", [account], tier=custom_tier.pk, reason="Signed contract #42"
    )

    account.refresh_from_db()
    assert account.tier == custom_tier
    me = api_get(client, key.plaintext).json()
    assert me["tier"]["slug"] == "acme-custom"
    assert me["limits"]["quota_units"] == 250_000
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.account, entry.actor) == (
        "account.tier_change",
        account,
        admin_user,
    )
    assert entry.before == {"tier": "free"}
    assert entry.after == {"tier": "acme-custom"}
    assert entry.reason == "Signed contract #42"
    assert any(m.startswith("Moved to Acme custom:") for m in messages_of(response))


@pytest.mark.django_db
def test_a_subscribed_account_is_told_that_stripe_is_not_changed(admin_client, custom_tier):
    pro = PaidTierFactory(name="Pro")
    account = AccountFactory(
        tier=pro, subscribed_tier=pro, stripe_subscription_id="sub_123", payment_status="active"
    )

    response = run_action(admin_client, "change_tier", [account], tier=custom_tier.pk)

    account.refresh_from_db()
    assert account.tier == custom_tier
    warning = next(m for m in messages_of(response) if m.startswith("Stripe was not changed"))
    assert "sub_123" in warning
    assert "still bills Pro" in warning


@pytest.mark.django_db
def test_an_account_already_on_the_tier_is_not_audited(admin_client):
    account = AccountFactory()

    response = run_action(admin_client, "change_tier", [account], tier=account.tier.pk)

    assert not AuditEntry.objects.exists()
    assert any(m.startswith("Already on") for m in messages_of(response))


@pytest.mark.django_db
def test_an_unknown_tier_is_refused(admin_client):
    account = AccountFactory()

    response = apply_action(admin_client, "change_tier", [account], tier=987654)

    assert response.context["form"].errors["tier"]
    assert not AuditEntry.objects.exists()
