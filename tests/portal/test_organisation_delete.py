"""An owner deletes their organisation (issue 17): with their password, on the account settings
page. Every key is refused by the API at once and every member loses access at once, while
everyone's login stays; the usage and billing records stay, an audit entry records it, and its
owners and billing members get one confirmation. Only an owner may."""

import pytest
from django.contrib.auth import authenticate
from django.core import mail
from django.test import Client
from django.urls import reverse

from metering.models import UsageRollup
from portal.account_deletion import DELETED_REASON
from portal.models import Account, AuditEntry, Invitation, Membership, Role
from portal.organisation_access import SESSION_KEY
from tests.factories import (
    PASSWORD,
    AccountFactory,
    ApiKeyFactory,
    MembershipFactory,
    UsageRollupFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

URL = reverse("portal:organisation-delete")
FIELD = "organisation-password"


@pytest.fixture
def team(account):
    """Ada's shop: the owner, a billing member and a developer, with two keys and some usage."""
    account.name = "Ada's shop"
    account.save()
    billing = MembershipFactory(
        account=account, role=Role.BILLING, user=UserFactory(email="pay@example.com")
    )
    developer = MembershipFactory(
        account=account, role=Role.DEVELOPER, user=UserFactory(email="dev@example.com")
    )
    keys = [
        ApiKeyFactory(account=account, name="owner's", created_by=account.owner),
        ApiKeyFactory(account=account, name="developer's", created_by=developer.user),
    ]
    UsageRollupFactory(account=account, api_key=keys[1], units=42)
    return account, billing, developer, keys


def member_client(membership: Membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def test_every_key_is_refused_and_every_member_loses_access_at_once(owner_client, team):
    account, _, developer, keys = team
    developer_client = member_client(developer)
    assert developer_client.get("/dashboard/").context["current_account"] == account

    response = owner_client.post(URL, {FIELD: PASSWORD})

    assert response.status_code == 302
    for key in keys:
        refused = Client().get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
        assert (refused.status_code, refused.json()["reason"]) == (401, "revoked")
    assert not Membership.objects.filter(account=account).exists()
    # The developer's next page acts for an organisation of their own, not the deleted one.
    assert developer_client.get("/dashboard/").context["current_account"] != account


def test_every_login_stays_and_the_owner_carries_on_signed_in(owner_client, owner, team):
    account, billing, developer, _ = team

    response = owner_client.post(URL, {FIELD: PASSWORD}, follow=True)

    page = response.content.decode()
    assert "Ada&#x27;s shop is deleted: its keys are revoked" in page
    assert f"A confirmation is on its way to {owner.email}, pay@example.com." in page
    assert response.context["current_account"] != account
    assert owner_client.session.get(SESSION_KEY) != account.pk
    for user in (owner, billing.user, developer.user):
        user.refresh_from_db()
        assert user.is_active and authenticate(username=user.email, password=PASSWORD) == user


def test_the_money_records_stay_and_the_organisation_is_suspended(owner_client, team):
    account, *_ = team

    owner_client.post(URL, {FIELD: PASSWORD})

    account.refresh_from_db()
    assert (account.status, account.suspended_reason) == (Account.Status.SUSPENDED, DELETED_REASON)
    assert account.name == ""
    assert UsageRollup.objects.get(account=account).units == 42


def test_an_audit_entry_names_the_members_by_id(owner_client, owner, team):
    account, billing, developer, keys = team

    owner_client.post(URL, {FIELD: PASSWORD})

    entry = AuditEntry.objects.get(action="account.delete")
    assert (entry.account, entry.actor, entry.target) == (account, owner, f"account {account.pk}")
    assert entry.before["usable_keys"] == [key.prefix for key in keys]
    assert entry.before["members"] == [
        {"user": owner.pk, "role": "owner"},
        {"user": billing.user.pk, "role": "billing"},
        {"user": developer.user.pk, "role": "developer"},
    ]
    assert entry.after["members"] == [] and entry.after["subscription_cancelled"] is False
    assert "@" not in str(entry.before) + str(entry.after)


def test_owners_and_billing_members_get_one_confirmation(
    owner_client, owner, team, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(URL, {FIELD: PASSWORD})

    assert [message.to for message in mail.outbox] == [[owner.email, "pay@example.com"]]
    message = mail.outbox[0]
    assert message.subject == "[Meterdesk] Ada's shop is deleted from Meterdesk"
    assert "Every API key of the organisation is revoked" in message.body
    assert "Your own login is kept" in message.body


def test_open_invitations_stop_working(owner_client, team):
    account, *_ = team
    invitation = Invitation.objects.create(
        account=account,
        email="late@example.com",
        role=Role.DEVELOPER,
        token_hash="0" * 64,
        expires_at=account.created.replace(year=account.created.year + 1),
    )

    owner_client.post(URL, {FIELD: PASSWORD})

    invitation.refresh_from_db()
    assert not invitation.is_open()


def test_an_owner_of_several_organisations_keeps_the_others(owner_client, owner, team):
    other = AccountFactory(owner=owner, name="Side project")
    key = ApiKeyFactory(account=other)

    owner_client.post(URL, {FIELD: PASSWORD})

    other.refresh_from_db()
    assert other.is_active and other.memberships.filter(user=owner).exists()
    assert Client().get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {key.plaintext}").status_code == 200
    assert owner_client.get("/dashboard/").context["current_account"] == other


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DEVELOPER, Role.BILLING])
def test_only_an_owner_may(team, role):
    account, *_ = team
    member = MembershipFactory(account=account, role=role)
    client = member_client(member)

    page = client.get("/account/").content.decode()
    response = client.post(URL, {FIELD: PASSWORD})

    assert response.status_code == 403
    assert 'data-testid="organisation-delete-form"' not in page
    account.refresh_from_db()
    assert account.is_active and account.memberships.count() == 4


def test_the_owner_sees_the_form_naming_what_goes(owner_client, team):
    page = owner_client.get("/account/").content.decode()

    assert 'data-testid="organisation-delete-form"' in page
    assert f'action="{URL}"' in page
    assert "removes every member (3, you included)" in page


@pytest.mark.parametrize("data", [{}, {FIELD: ""}, {FIELD: "not-my-password"}])
def test_without_the_right_password_nothing_happens(owner_client, team, data):
    account, *_ = team

    response = owner_client.post(URL, data)

    assert response.status_code == 400
    account.refresh_from_db()
    assert account.is_active and account.memberships.count() == 3
    assert not AuditEntry.objects.filter(action="account.delete").exists()


def test_password_guesses_share_one_limit_with_the_login_deletion(owner_client, team):
    account, *_ = team
    for _ in range(3):
        assert owner_client.post(URL, {FIELD: "guess"}).status_code == 400
    for _ in range(2):
        assert owner_client.post("/account/delete/", {"password": "guess"}).status_code == 400

    assert owner_client.post(URL, {FIELD: PASSWORD}).status_code == 429
    account.refresh_from_db()
    assert account.is_active


def test_a_post_without_its_csrf_token_is_refused(owner, team):
    account, *_ = team
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    assert client.post(URL, {FIELD: PASSWORD}).status_code == 403
    account.refresh_from_db()
    assert account.is_active


def test_get_and_visitors_are_refused(owner_client, account):
    assert owner_client.get(URL).status_code == 405
    owner_client.logout()
    response = owner_client.post(URL, {FIELD: PASSWORD})
    assert response["Location"].startswith(reverse("account_login"))
    account.refresh_from_db()
    assert account.is_active
