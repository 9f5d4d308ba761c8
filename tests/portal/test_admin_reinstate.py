"""Admin action: reinstate suspended accounts (their keys work again at once)."""

import pytest

from portal.models import Account, AuditEntry
from tests.factories import AccountFactory, ApiKeyFactory
from tests.portal.admin_actions import api_get, messages_of, run_action

REASON = "Card testing from this account"


@pytest.mark.django_db
def test_reinstate_lets_the_keys_work_again_with_one_audit_entry(admin_client, admin_user, client):
    account = AccountFactory(status=Account.Status.SUSPENDED, suspended_reason=REASON)
    key = ApiKeyFactory(account=account)
    assert api_get(client, key.plaintext).status_code == 403

    response = run_action(admin_client, "reinstate", [account], reason="Owner explained, refunded")

    account.refresh_from_db()
    assert account.is_active
    assert account.suspended_reason == ""
    assert api_get(client, key.plaintext).status_code == 200
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.account, entry.actor) == ("account.reinstate", account, admin_user)
    assert entry.before == {"status": "suspended", "suspended_reason": REASON}
    assert entry.after == {"status": "active", "suspended_reason": ""}
    assert entry.reason == "Owner explained, refunded"
    assert any(m.startswith("Reinstated ") for m in messages_of(response))


@pytest.mark.django_db
def test_reinstate_needs_no_note(admin_client):
    account = AccountFactory(status=Account.Status.SUSPENDED, suspended_reason=REASON)

    run_action(admin_client, "reinstate", [account], reason="")

    account.refresh_from_db()
    assert account.is_active
    assert AuditEntry.objects.get().reason == ""


@pytest.mark.django_db
def test_active_accounts_are_left_alone_and_not_audited(admin_client):
    active = AccountFactory()
    suspended = AccountFactory(status=Account.Status.SUSPENDED, suspended_reason=REASON)

    response = run_action(admin_client, "reinstate", [active, suspended])

    assert list(AuditEntry.objects.values_list("account", flat=True)) == [suspended.pk]
    assert any("Not suspended" in m and active.owner.email in m for m in messages_of(response))
