"""Accepting an invitation from its email's link: as a visitor, a signed-in user, a new user
signing up from it; once, in time, for the address it was sent to."""

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from portal.models import Account, AuditEntry, Invitation, Membership, Role
from portal.organisations import invitation_create, invitation_revoke
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-Long-passw0rd!"


def invited(account, email="ada@example.com", role=Role.DEVELOPER) -> tuple[Invitation, str]:
    return invitation_create(
        account=account,
        email=email,
        role=role,
        actor=account.owner,
        actor_membership=account.memberships.get(user=account.owner),
    )


def url(token: str) -> str:
    return f"/invitations/{token}/"


@pytest.fixture
def ada(db):
    """The invitee, with an organisation of her own."""
    return AccountFactory(owner=UserFactory(email="ada@example.com")).owner


def test_a_visitor_sees_the_organisation_and_role_and_is_sent_to_log_in_or_sign_up(client, account):
    account.name = "Acme"
    account.save()
    _invitation, token = invited(account, role=Role.BILLING)

    page = client.get(url(token)).content.decode()

    assert "Join Acme" in page
    assert "as <strong>Billing</strong>" in page
    next_param = f"?next=/invitations/{token}/"
    assert f'href="/accounts/login/{next_param}"' in page
    assert f'href="/accounts/signup/{next_param}"' in page
    assert not Membership.objects.filter(account=account, role=Role.BILLING).exists()


def test_a_visitors_post_joins_nobody(client, account):
    _invitation, token = invited(account)

    client.post(url(token))

    assert account.memberships.count() == 1


def test_logging_in_from_the_link_comes_back_to_it(client, account, ada):
    _invitation, token = invited(account)

    response = client.post(
        "/accounts/login/",
        {"login": ada.email, "password": "correct-horse-battery-staple", "next": url(token)},
    )

    assert response.status_code == 302
    assert response["Location"] == url(token)


def test_accepting_joins_with_the_role_and_switches_to_the_organisation(client, account, ada):
    account.name = "Acme"
    account.save()
    invitation, token = invited(account, role=Role.BILLING)
    client.force_login(ada)

    assert "Accept and join Acme" in client.get(url(token)).content.decode()
    response = client.post(url(token), follow=True)

    assert response.redirect_chain[-1][0] == "/dashboard/"
    assert "Welcome to Acme: you joined as Billing." in response.content.decode()
    assert Membership.objects.get(account=account, user=ada).role == Role.BILLING
    invitation.refresh_from_db()
    assert invitation.accepted_by == ada
    assert invitation.status == "accepted"
    members_page = client.get("/organisation/members/").content.decode()
    assert "Members of Acme" in members_page
    entry = AuditEntry.objects.get(action="membership.add")
    assert (entry.actor, entry.target) == (ada, ada.email)
    assert f"Accepted invitation {invitation.pk}" in entry.reason


def test_an_invitation_works_once(client, account, ada):
    _invitation, token = invited(account)
    client.force_login(ada)
    client.post(url(token))

    again = client.post(url(token))

    assert again.status_code == 410
    assert "already accepted" in again.content.decode()
    assert client.get(url(token)).status_code == 410
    assert Membership.objects.filter(account=account, user=ada).count() == 1


def test_it_works_until_seven_days_have_passed(client, account, ada, monkeypatch):
    _invitation, token = invited(account)
    client.force_login(ada)
    real_now = timezone.now

    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(days=6, hours=23))
    assert client.get(url(token)).status_code == 200
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(days=7, minutes=1))
    page = client.get(url(token))
    refused = client.post(url(token))

    assert page.status_code == refused.status_code == 410
    assert "This invitation expired on" in page.content.decode()
    assert not Membership.objects.filter(account=account, user=ada).exists()


def test_a_revoked_invitation_does_not_work(client, account, ada):
    invitation, token = invited(account)
    invitation_revoke(invitation=invitation, actor=account.owner, actor_membership=None)
    client.force_login(ada)

    response = client.post(url(token))

    assert response.status_code == 410
    assert "withdrawn" in response.content.decode()
    assert not Membership.objects.filter(account=account, user=ada).exists()


def test_a_made_up_link_is_a_404_in_words(client, ada):
    client.force_login(ada)

    response = client.post(url("not-a-real-token"))

    assert response.status_code == 404
    assert "This invitation link is not valid" in response.content.decode()


def test_another_address_is_refused_and_told_where_it_was_sent(client, account, outsider):
    _invitation, token = invited(account, email="ada@example.com")
    client.force_login(outsider)

    page = client.get(url(token))
    refused = client.post(url(token))

    assert page.status_code == refused.status_code == 403
    for response in (page, refused):
        assert "This invitation was sent to ada@example.com" in response.content.decode()
        assert "Accept and join" not in response.content.decode()
    assert not Membership.objects.filter(account=account, user=outsider).exists()


def test_any_verified_address_of_the_user_matches_case_insensitively(client, account, outsider):
    _invitation, token = invited(account, email="Work@Example.com")
    EmailAddress.objects.create(user=outsider, email="work@example.com", verified=False)
    client.force_login(outsider)

    assert client.post(url(token)).status_code == 403

    EmailAddress.objects.filter(email="work@example.com").update(verified=True)
    assert client.post(url(token)).status_code == 302
    assert Membership.objects.filter(account=account, user=outsider).exists()


def test_a_member_already_is_told_so(client, account):
    _invitation, token = invited(account, email="other@example.com")
    EmailAddress.objects.create(user=account.owner, email="other@example.com", verified=True)
    client.force_login(account.owner)

    response = client.post(url(token))

    assert response.status_code == 409
    assert f"You are already a member of {account}" in response.content.decode()


def _sign_up_from_the_link(client, token: str, email: str) -> str:
    """Sign up from the invitation page's link; returns the confirmation email's path."""
    client.get(f"/accounts/signup/?next={url(token)}")
    client.post(
        "/accounts/signup/",
        {"email": email, "password1": PASSWORD, "password2": PASSWORD, "next": url(token)},
    )
    found = re.search(r"/accounts/confirm-email/\S+/", str(mail.outbox[-1].body))
    assert found is not None
    return found.group(0)


def test_a_new_user_signs_up_verifies_and_is_brought_back_to_accept(client, account):
    _invitation, token = invited(account, email="new@example.com", role=Role.DEVELOPER)
    mail.outbox.clear()

    confirm = _sign_up_from_the_link(client, token, "new@example.com")
    # Mandatory verification: not signed in until the address is confirmed.
    assert client.get(url(token)).content.decode().count("Accept and join") == 0
    response = client.post(confirm)

    assert response.status_code == 302
    assert response["Location"] == url(token)
    client.post(url(token))
    user = User.objects.get(email="new@example.com")
    assert Membership.objects.get(account=account, user=user).role == Role.DEVELOPER
    # Their own organisation from signup stays theirs.
    assert Account.objects.filter(owner=user).count() == 1


def test_a_new_user_who_confirms_in_another_browser_logs_in_and_reopens_the_link(
    client, account, django_capture_on_commit_callbacks
):
    from django.test import Client

    _invitation, token = invited(account, email="new@example.com")
    mail.outbox.clear()
    confirm = _sign_up_from_the_link(client, token, "new@example.com")

    other_browser = Client()
    other_browser.post(confirm)
    other_browser.post(
        "/accounts/login/", {"login": "new@example.com", "password": PASSWORD, "next": url(token)}
    )
    response = other_browser.post(url(token))

    assert response.status_code == 302
    assert account.memberships.filter(user__email="new@example.com").exists()
