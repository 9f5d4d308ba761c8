"""Admin action: suspend accounts (a reason required; their keys then get 403 with it)."""

import pytest

from portal.models import Account, AuditEntry
from tests.factories import AccountFactory, ApiKeyFactory
from tests.portal.admin_actions import api_get, apply_action, choose_action, messages_of, run_action

REASON = "Scraping the lookup endpoint for resale"


@pytest.mark.django_db
def test_choosing_suspend_shows_the_accounts_and_asks_for_a_reason(admin_client):
    accounts = AccountFactory.create_batch(2)

    response = choose_action(admin_client, "suspend", accounts)

    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="reason"' in page
    assert all(account.owner.email in page for account in accounts)
    assert not Account.objects.filter(status=Account.Status.SUSPENDED).exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_suspend_suspends_each_account_with_one_audit_entry(admin_client, admin_user):
    accounts = AccountFactory.create_batch(2)
    bystander = AccountFactory()

    response = run_action(admin_client, "suspend", accounts, reason=f"  {REASON} ")

    for account in accounts:
        account.refresh_from_db()
        assert account.status == Account.Status.SUSPENDED
        assert account.suspended_reason == REASON
        entry = AuditEntry.objects.get(account=account)
        assert entry.action == "account.suspend"
        assert entry.actor == admin_user
        assert entry.reason == REASON
        assert entry.target == account.owner.email
        assert entry.before == {"status": "active", "suspended_reason": ""}
        assert entry.after == {"status": "suspended", "suspended_reason": REASON}
    bystander.refresh_from_db()
    assert bystander.is_active
    assert AuditEntry.objects.count() == 2
    assert any(
        m.startswith("Suspended ") and accounts[0].owner.email in m for m in messages_of(response)
    )


@pytest.mark.django_db
def test_a_suspended_accounts_key_gets_403_with_the_reason_at_once(admin_client, client):
    key = ApiKeyFactory()
    assert api_get(client, key.plaintext).status_code == 200  # the principal is cached now

    run_action(admin_client, "suspend", [key.account], reason=REASON)

    response = api_get(client, key.plaintext)
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["reason"] == REASON
    assert "suspended" in body["detail"]


@pytest.mark.django_db
def test_a_blank_reason_is_refused_and_nothing_changes(admin_client):
    account = AccountFactory()

    response = apply_action(admin_client, "suspend", [account], reason="   ")

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    account.refresh_from_db()
    assert account.is_active
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_suspending_again_for_the_same_reason_writes_nothing(admin_client):
    account = AccountFactory(status=Account.Status.SUSPENDED, suspended_reason=REASON)

    response = run_action(admin_client, "suspend", [account], reason=REASON)

    assert not AuditEntry.objects.exists()
    assert any("Already suspended" in m for m in messages_of(response))
