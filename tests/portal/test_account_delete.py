"""A member deletes their login (issue 16, made for teams by issue 17): with their password, by
a form that needs its CSRF token. The session ends and the login no longer works, personal data
is gone, and the old address gets a confirmation. An organisation they are the only member of
goes with it: every key is refused by the API at once, while the usage and billing records stay
and an audit entry records it. They leave the others, which go on; while they are the only
owner of one with other members, the deletion is refused until they hand it over."""

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
from portal.account_deletion import (
    DELETED_REASON,
    AccountDeletionError,
    login_delete,
    organisation_delete,
)
from portal.models import Account, AuditEntry, Membership, Role
from tests.factories import (
    PASSWORD,
    AccountFactory,
    ApiKeyFactory,
    MembershipFactory,
    UsageRollupFactory,
)

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
    assert f"Your login is deleted. A confirmation is on its way to {email}." in home
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
    assert entry.before["members"] == [{"user": owner.pk, "role": "owner"}]
    assert entry.after == {
        "status": "deleted",
        "usable_keys": [],
        "members": [],
        "subscription_cancelled": False,
    }
    assert email not in str(entry.before) + str(entry.after) + entry.target
    login = AuditEntry.objects.get(action="login.delete")
    assert (login.account, login.actor, login.target) == (None, owner, f"user {owner.pk}")
    assert login.before == {"organisations_deleted": [account.pk], "organisations_left": []}


def test_the_old_address_gets_a_confirmation_naming_what_went_with_it(
    owner_client, owner, account, django_capture_on_commit_callbacks
):
    email = owner.email
    account.name = "Ada's shop"
    account.save()

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(URL, {"password": PASSWORD})

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [email]
    assert message.subject == "[Meterdesk] Your Meterdesk login is deleted"
    assert "Deleted with it, as you were their only member: Ada's shop." in message.body
    assert "Every API key of these organisations is revoked" in message.body


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


def test_deleting_twice_is_refused(owner, account, outsider):
    login_delete(user=owner)

    with pytest.raises(AccountDeletionError, match="already deleted"):
        login_delete(user=owner)
    with pytest.raises(AccountDeletionError, match="already deleted"):
        organisation_delete(account=account, actor=outsider)


def test_rolled_keys_in_their_grace_period_are_revoked_too(owner_client, account):
    from portal.services import api_key_roll

    old = ApiKeyFactory(account=account)
    api_key_roll(key=old, grace=timedelta(days=1))

    owner_client.post(URL, {"password": PASSWORD})

    refused = Client().get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {old.plaintext}")
    assert refused.status_code == 401


@pytest.fixture
def team(account):
    """The owner's organisation with a developer, who made a key of it."""
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    key = ApiKeyFactory(account=account, name="developer's", created_by=developer.user)
    return developer, key


def test_a_member_leaves_and_the_organisation_goes_on(client, account, team):
    developer, key = team
    client.force_login(developer.user)

    response = client.post(URL, {"password": PASSWORD})

    assert response.status_code == 302
    assert not Membership.objects.filter(user=developer.user).exists()
    account.refresh_from_db()
    assert account.is_active
    # The key they made is the organisation's: it keeps working until an admin revokes it.
    assert Client().get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {key.plaintext}").status_code == 200
    leave = AuditEntry.objects.get(action="membership.leave")
    assert leave.account == account and leave.after["keys_still_working"] == [key.prefix]
    assert AuditEntry.objects.get(action="login.delete").before == {
        "organisations_deleted": [],
        "organisations_left": [account.pk],
    }


def test_the_only_owner_of_a_team_is_refused_until_they_hand_it_over(
    owner_client, owner, account, team
):
    account.name = "Ada's shop"
    account.save()

    page = owner_client.get("/account/").content.decode()
    response = owner_client.post(URL, {"password": PASSWORD})

    assert "You are the only owner of Ada&#x27;s shop, which has other members" in page
    assert response.status_code == 409
    assert (
        "You are the only owner of Ada&#x27;s shop, which has other members: make one of them "
        "an owner" in response.content.decode()
    )
    owner.refresh_from_db()
    assert owner.is_active
    assert account.memberships.count() == 2
    assert not AuditEntry.objects.filter(action__in=["login.delete", "account.delete"]).exists()


def test_a_co_owner_leaving_hands_the_primary_ownership_on(owner_client, owner, account, team):
    developer, _ = team
    Membership.objects.filter(pk=developer.pk).update(role=Role.OWNER)

    response = owner_client.post(URL, {"password": PASSWORD})

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.owner == developer.user and account.is_active
    assert list(account.memberships.values_list("user", flat=True)) == [developer.user.pk]


def test_each_organisation_is_weighed_on_its_own(owner, account, team):
    """Their personal organisation goes, the team's is refused: nothing happens at all."""
    personal = AccountFactory(owner=owner)

    with pytest.raises(AccountDeletionError, match="only owner of"):
        login_delete(user=owner)

    personal.refresh_from_db()
    assert personal.is_active and personal.memberships.filter(user=owner).exists()
