"""The API key admin: operators see keys (never hashes) and revoke them through the service."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.keys.cache import KeyRejected, key_cache
from portal.models import ApiKey, AuditEntry
from tests.factories import ApiKeyFactory, UserFactory

CHANGELIST = "admin:portal_apikey_changelist"


@pytest.fixture
def admin_client(db):
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def staff_client(*codenames: str) -> Client:
    user = UserFactory(is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_list_shows_keys_of_every_account_but_never_a_hash(admin_client, api_key, outsider):
    theirs = ApiKeyFactory(account=outsider.owned_accounts.get())

    page = admin_client.get(reverse(CHANGELIST)).content.decode()

    assert api_key.prefix in page and theirs.prefix in page
    assert api_key.secret_hash not in page
    detail = admin_client.get(reverse("admin:portal_apikey_change", args=[api_key.pk]))
    assert detail.status_code == 200
    assert api_key.secret_hash not in detail.content.decode()


@pytest.mark.django_db
def test_a_whole_pasted_key_finds_its_row(admin_client, api_key, account):
    other = ApiKeyFactory(account=account)

    page = admin_client.get(reverse(CHANGELIST), {"q": api_key.plaintext}).content.decode()

    assert api_key.prefix in page
    assert other.prefix not in page


@pytest.mark.django_db
def test_revoke_action_revokes_audits_and_invalidates(admin_client, api_key, account):
    key_cache.resolve(api_key.plaintext)

    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "revoke_selected", "_selected_action": [api_key.pk], "index": 0},
        follow=True,
    )

    assert "Revoked 1 key" in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert AuditEntry.objects.get().action == "api_key.revoke"
    with pytest.raises(KeyRejected):
        key_cache.resolve(api_key.plaintext)


@pytest.mark.django_db
def test_editing_the_expiry_reaches_the_key_cache(admin_client, api_key, account):
    key_cache.resolve(api_key.plaintext)
    past = timezone.now() - timedelta(minutes=1)

    response = admin_client.post(
        reverse("admin:portal_apikey_change", args=[api_key.pk]),
        {
            "name": api_key.name,
            "expires_at_0": past.strftime("%Y-%m-%d"),
            "expires_at_1": past.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 302
    with pytest.raises(KeyRejected) as refused:
        key_cache.resolve(api_key.plaintext)
    assert refused.value.reason == "expired"


@pytest.mark.django_db
def test_keys_are_not_added_or_deleted_here(admin_client, api_key):
    assert admin_client.get(reverse("admin:portal_apikey_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:portal_apikey_delete", args=[api_key.pk])).status_code
        == 403
    )


@pytest.mark.django_db
def test_view_only_staff_see_keys_but_cannot_revoke(api_key):
    client = staff_client("view_apikey")

    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert api_key.prefix in page.content.decode()
    assert "revoke_selected" not in page.content.decode()

    client.post(
        reverse(CHANGELIST),
        {"action": "revoke_selected", "_selected_action": [api_key.pk], "index": 0},
    )
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


@pytest.mark.django_db
def test_staff_without_key_permissions_are_refused(api_key):
    assert staff_client().get(reverse(CHANGELIST)).status_code == 403


@pytest.mark.django_db
def test_status_filter(admin_client, account):
    usable = ApiKeyFactory(account=account)
    revoked = ApiKeyFactory(account=account, revoked_at=timezone.now())

    page = admin_client.get(reverse(CHANGELIST), {"status": "revoked"}).content.decode()

    assert revoked.prefix in page
    assert usable.prefix not in page
    assert ApiKey.objects.count() == 2
