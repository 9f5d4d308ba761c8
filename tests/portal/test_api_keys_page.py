"""The API keys list page."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import Role
from tests.factories import ApiKeyFactory, MembershipFactory


@pytest.mark.django_db
def test_lists_the_accounts_keys_with_their_status(owner_client, account):
    now = timezone.now()
    ApiKeyFactory(account=account, name="active one", last_used=now)
    ApiKeyFactory(account=account, name="revoked one", revoked_at=now)
    ApiKeyFactory(account=account, name="expired one", expires_at=now - timedelta(days=1))

    page = owner_client.get("/keys/").content.decode()

    for name in ["active one", "revoked one", "expired one"]:
        assert name in page
    assert "badge ok" in page and "Active" in page
    assert "Revoked" in page
    assert "Expired" in page


@pytest.mark.django_db
def test_shows_the_prefix_but_never_the_hash(owner_client, api_key):
    page = owner_client.get("/keys/").content.decode()

    assert api_key.prefix in page
    assert api_key.secret_hash not in page
    assert api_key.plaintext not in page


@pytest.mark.django_db
def test_does_not_list_other_accounts_keys(owner_client, outsider):
    theirs = ApiKeyFactory(account=outsider.owned_accounts.get(), name="not yours")

    page = owner_client.get("/keys/").content.decode()

    assert theirs.prefix not in page
    assert "not yours" not in page


@pytest.mark.django_db
def test_empty_state_invites_to_create_a_key(owner_client):
    page = owner_client.get("/keys/").content.decode()

    assert "no API keys yet" in page
    assert 'href="/keys/new/"' in page


@pytest.mark.django_db
def test_needs_login(client):
    response = client.get("/keys/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_revoke_and_roll_ask_for_confirmation(owner_client, api_key):
    page = owner_client.get("/keys/").content.decode()

    assert f'action="/keys/{api_key.pk}/revoke/"' in page
    assert "Yes, revoke it" in page
    assert f'action="/keys/{api_key.pk}/roll/"' in page
    for seconds in ["0", "3600", "86400", "604800"]:
        assert f'value="{seconds}"' in page


@pytest.mark.django_db
def test_a_developer_sees_only_the_keys_they_made(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    theirs = ApiKeyFactory(account=account, name="my laptop", created_by=developer)
    owners = ApiKeyFactory(account=account, name="production", created_by=account.owner)
    client.force_login(developer)

    page = client.get("/keys/").content.decode()

    assert theirs.prefix in page
    assert owners.prefix not in page and "production" not in page
    assert "Made by" not in page


@pytest.mark.django_db
def test_an_admin_sees_every_key_and_who_made_it(client, account):
    admin = MembershipFactory(account=account, role=Role.ADMIN).user
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    ApiKeyFactory(account=account, name="their laptop", created_by=developer)
    ApiKeyFactory(account=account, name="by a command", created_by=None)
    client.force_login(admin)

    page = client.get("/keys/").content.decode()

    assert "Made by" in page
    assert "their laptop" in page and developer.email in page
    assert "by a command" in page and "Not recorded" in page


@pytest.mark.django_db
def test_a_billing_member_is_told_their_role_opens_no_keys(client, account):
    client.force_login(MembershipFactory(account=account, role=Role.BILLING).user)

    response = client.get("/keys/")

    assert response.status_code == 403
    assert "is <strong>Billing</strong>" in response.content.decode()
