"""Admin action: revoke every working key of the selected accounts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import ApiKey, AuditEntry
from tests.factories import AccountFactory, ApiKeyFactory
from tests.portal.admin_actions import api_get, apply_action, messages_of, run_action


@pytest.mark.django_db
def test_revoke_keys_stops_every_working_key_with_one_audit_entry(admin_client, admin_user, client):
    account = AccountFactory()
    first, second = ApiKeyFactory.create_batch(2, account=account)
    earlier = timezone.now() - timedelta(days=3)
    already_revoked = ApiKeyFactory(account=account, revoked_at=earlier)
    other = ApiKeyFactory()
    assert api_get(client, first.plaintext).status_code == 200  # cached now

    response = run_action(admin_client, "revoke_keys", [account], reason="Keys leaked on GitHub")

    assert api_get(client, first.plaintext).status_code == 401
    assert api_get(client, second.plaintext).status_code == 401
    assert api_get(client, other.plaintext).status_code == 200
    already_revoked.refresh_from_db()
    assert already_revoked.revoked_at == earlier
    assert not ApiKey.objects.filter(account=account).usable().exists()
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.account, entry.actor) == (
        "account.keys_revoke",
        account,
        admin_user,
    )
    assert sorted(entry.before["usable_keys"]) == sorted([first.prefix, second.prefix])
    assert entry.after == {"usable_keys": []}
    assert entry.reason == "Keys leaked on GitHub"
    assert any(m.startswith("Revoked every key of") for m in messages_of(response))


@pytest.mark.django_db
def test_a_rolled_key_in_its_grace_period_is_revoked_too(admin_client, client):
    account = AccountFactory()
    new = ApiKeyFactory(account=account)
    rolled = ApiKeyFactory(
        account=account, replaced_by=new, expires_at=timezone.now() + timedelta(hours=1)
    )

    run_action(admin_client, "revoke_keys", [account], reason="Compromised")

    assert api_get(client, rolled.plaintext).status_code == 401
    assert api_get(client, new.plaintext).status_code == 401


@pytest.mark.django_db
def test_a_reason_is_required(admin_client):
    key = ApiKeyFactory()

    response = apply_action(admin_client, "revoke_keys", [key.account], reason="")

    assert response.context["form"].errors["reason"]
    key.refresh_from_db()
    assert key.revoked_at is None
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_an_account_without_working_keys_is_not_audited(admin_client):
    account = AccountFactory()

    response = run_action(admin_client, "revoke_keys", [account], reason="Precaution")

    assert not AuditEntry.objects.exists()
    assert any("No working keys" in m for m in messages_of(response))
