"""The API keys list page."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import ApiKeyFactory


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
    theirs = ApiKeyFactory(account=outsider.account, name="not yours")

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
