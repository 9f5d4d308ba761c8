"""A developer deletes their account (issue 16): with their password, by a form that needs its
CSRF token. Every key is refused by the API at once, the session ends and the login no longer
works, personal data is gone while the usage and billing records stay, an audit entry records
it, and the old address gets a confirmation."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth import authenticate
from django.core import mail
from django.test import Client
from django.urls import reverse

from metering.models import UsageRollup
from portal.account_deletion import DELETED_REASON, AccountDeletionError, account_delete
from portal.models import Account, AuditEntry
from tests.factories import PASSWORD, ApiKeyFactory, UsageRollupFactory

pytestmark = pytest.mark.django_db

URL = "/account/delete/"


@pytest.fixture
def keys(account):
    return [ApiKeyFactory(account=account, name=name) for name in ("laptop", "ci")]


def test_deleting_revokes_every_key_at_once(owner_client, keys):
    for key in keys:
        assert (
            owner_client.get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {key.plaintext}").status_code
            == 200
        )

    response = owner_client.post(URL, {"password": PASSWORD})

    assert response.status_code == 302
    for key in keys:
        refused = Client().get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
        assert refused.status_code == 401
        assert refused.json()["reason"] == "revoked"


def test_the_developer_is_logged_out_and_cannot_log_in_again(owner_client, owner, keys):
    email = owner.email

    response = owner_client.post(URL, {"password": PASSWORD})

    assert response["Location"] == reverse("portal:home")
    home = owner_client.get(response["Location"], follow=True).content.decode()
    assert f"Your account is deleted. A confirmation is on its way to {email}." in home
    assert owner_client.get("/dashboard/")["Location"].startswith(reverse("account_login"))
    assert authenticate(username=email, password=PASSWORD) is None
    login = Client().post(reverse("account_login"), {"login": email, "password": PASSWORD})
    assert login.status_code != 302 or "dashboard" not in login["Location"]


def test_a_session_on_another_browser_ends_too(owner, client):
    other = Client()
    other.force_login(owner)
    client.force_login(owner)

    client.post(URL, {"password": PASSWORD})

    assert other.get("/dashboard/").status_code == 302


def test_personal_data_goes_and_the_money_records_stay(owner_client, owner, account, keys):
    TOTP.activate(owner, generate_totp_secret())
    account.name = "Ada's shop"
    account.save()
    UsageRollupFactory(account=account, api_key=keys[0], units=42)

    owner_client.post(URL, {"password": PASSWORD})

    owner.refresh_from_db()
    account.refresh_from_db()
    assert owner.email == owner.username == f"deleted-{owner.pk}@deleted.invalid"
    assert not owner.is_active and not owner.has_usable_password()
    assert not EmailAddress.objects.filter(user=owner).exists()
    assert not Authenticator.objects.filter(user=owner).exists()
    assert account.name == ""
    assert (account.status, account.suspended_reason) == (Account.Status.SUSPENDED, DELETED_REASON)
    assert UsageRollup.objects.get(account=account).units == 42


def test_an_audit_entry_records_it_without_the_email(owner_client, owner, account, keys):
    email = owner.email

    owner_client.post(URL, {"password": PASSWORD})

    entry = AuditEntry.objects.get(action="account.delete")
    assert entry.account == account and entry.actor == owner
    assert entry.target == f"account {account.pk}"
    assert entry.before["usable_keys"] == [key.prefix for key in keys]
    assert entry.after == {"status": "deleted", "usable_keys": [], "subscription_cancelled": False}
    assert email not in str(entry.before) + str(entry.after) + entry.target


def test_the_old_address_gets_a_confirmation(
    owner_client, owner, django_capture_on_commit_callbacks
):
    email = owner.email

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(URL, {"password": PASSWORD})

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [email]
    assert message.subject == "[Meterdesk] Your Meterdesk account is deleted"
    assert "Every API key of the account is revoked" in message.body


@pytest.mark.parametrize("data", [{}, {"password": ""}, {"password": "not-my-password"}])
def test_without_the_right_password_nothing_happens(owner_client, owner, keys, data):
    response = owner_client.post(URL, data)

    assert response.status_code == 400
    page = response.content.decode()
    assert "That is not your password." in page or "This field is required." in page
    owner.refresh_from_db()
    assert owner.is_active
    assert all(
        Client().get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {key.plaintext}").status_code == 200
        for key in keys
    )
    assert not AuditEntry.objects.filter(action="account.delete").exists()


def test_a_post_without_its_csrf_token_is_refused(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post(URL, {"password": PASSWORD})

    assert response.status_code == 403
    owner.refresh_from_db()
    assert owner.is_active


def test_get_and_visitors_are_refused(owner_client, client):
    assert owner_client.get(URL).status_code == 405
    owner_client.logout()
    response = owner_client.post(URL, {"password": PASSWORD})
    assert response["Location"].startswith(reverse("account_login"))


def test_password_guesses_are_limited(owner_client, owner):
    for _ in range(5):
        assert owner_client.post(URL, {"password": "guess"}).status_code == 400

    response = owner_client.post(URL, {"password": PASSWORD})

    assert response.status_code == 429
    owner.refresh_from_db()
    assert owner.is_active


def test_deleting_twice_is_refused(account):
    account_delete(account=account)

    with pytest.raises(AccountDeletionError, match="already deleted"):
        account_delete(account=account)


def test_rolled_keys_in_their_grace_period_are_revoked_too(owner_client, account):
    from portal.services import api_key_roll

    old = ApiKeyFactory(account=account)
    api_key_roll(key=old, grace=timedelta(days=1))

    owner_client.post(URL, {"password": PASSWORD})

    refused = Client().get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {old.plaintext}")
    assert refused.status_code == 401
