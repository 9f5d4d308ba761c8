"""Inviting someone from the members page: who may, what the email says, what is stored."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from portal.models import AuditEntry, Invitation, Role
from portal.organisations import MembershipError, OwnerOnly, invitation_create
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/organisation/invitations/"


def invite(client, capture, email="new@example.com", role=Role.DEVELOPER):
    with capture(execute=True):
        return client.post(URL, {"email": email, "role": role})


def test_an_owner_invites_and_the_email_carries_a_link_that_is_not_stored(
    owner_client, account, settings, django_capture_on_commit_callbacks
):
    response = invite(owner_client, django_capture_on_commit_callbacks, role=Role.BILLING)

    assert response.status_code == 302
    invitation = Invitation.objects.get(account=account)
    assert (invitation.email, invitation.role) == ("new@example.com", Role.BILLING)
    assert invitation.invited_by == account.owner
    assert invitation.expires_at - invitation.created == timedelta(days=7)
    [message] = mail.outbox
    assert message.to == ["new@example.com"]
    assert str(account) in message.subject
    assert "as Billing" in str(message.body)
    link = re.search(rf"{re.escape(settings.SITE_URL)}/invitations/(\S+)/", str(message.body))
    assert link is not None
    token = link.group(1)
    # Only its hash is kept.
    assert invitation.token_hash == Invitation.hash_token(token) != token
    html = message.alternatives[0][0]  # type: ignore[attr-defined]
    assert f"/invitations/{token}/" in str(html)
    entry = AuditEntry.objects.get(action="invitation.create")
    assert (entry.actor, entry.target) == (account.owner, "new@example.com")


def test_the_page_lists_the_open_invitation_with_a_revoke_button(
    owner_client, django_capture_on_commit_callbacks
):
    invite(owner_client, django_capture_on_commit_callbacks, email="ada@example.com")

    page = owner_client.get("/organisation/members/").content.decode()

    assert "ada@example.com as Developer" in page
    invitation = Invitation.objects.get()
    assert f"/organisation/invitations/{invitation.pk}/revoke/" in page


def test_an_admin_invites_a_developer_but_not_an_owner(
    client, account, django_capture_on_commit_callbacks
):
    admin = MembershipFactory(account=account, role=Role.ADMIN).user
    client.force_login(admin)

    assert invite(client, django_capture_on_commit_callbacks).status_code == 302
    refused = invite(client, django_capture_on_commit_callbacks, "boss@example.com", Role.OWNER)

    assert refused.status_code == 403
    assert "Only an owner" in refused.content.decode()
    assert list(Invitation.objects.values_list("email", flat=True)) == ["new@example.com"]
    assert len(mail.outbox) == 1


def test_the_members_page_offers_an_admin_no_owner_role(client, account):
    admin = MembershipFactory(account=account, role=Role.ADMIN).user
    client.force_login(admin)

    page = client.get("/organisation/members/").content.decode()

    assert 'value="developer"' in page
    assert 'value="owner"' not in page


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.BILLING])
def test_a_developer_or_billing_member_may_not_invite(
    client, account, role, django_capture_on_commit_callbacks
):
    client.force_login(MembershipFactory(account=account, role=role).user)

    response = invite(client, django_capture_on_commit_callbacks)

    assert response.status_code == 403
    assert not Invitation.objects.exists()
    assert mail.outbox == []
    assert "Send invitation" not in client.get("/organisation/members/").content.decode()


def test_inviting_a_member_again_is_refused_whatever_the_case(
    owner_client, account, django_capture_on_commit_callbacks
):
    member = MembershipFactory(account=account, user=UserFactory(email="dev@example.com"))

    response = invite(owner_client, django_capture_on_commit_callbacks, email="DEV@Example.com")

    assert response.status_code == 409
    assert f"is already a member of {account}" in response.content.decode()
    assert member.user.email == "dev@example.com"
    assert not Invitation.objects.exists()


def test_inviting_an_address_again_replaces_its_open_invitation(
    owner_client, account, django_capture_on_commit_callbacks
):
    invite(owner_client, django_capture_on_commit_callbacks, role=Role.DEVELOPER)
    invite(owner_client, django_capture_on_commit_callbacks, role=Role.ADMIN)

    first, second = Invitation.objects.order_by("created", "pk")
    assert first.status == "revoked"
    assert (second.status, second.role) == ("open", Role.ADMIN)
    first_link = re.search(r"/invitations/\S+/", str(mail.outbox[0].body))
    assert first_link is not None
    assert owner_client.get(first_link.group(0)).status_code == 410


def test_a_malformed_address_is_a_clear_400(owner_client, django_capture_on_commit_callbacks):
    response = invite(owner_client, django_capture_on_commit_callbacks, email="not-an-address")

    assert response.status_code == 400
    assert "valid email" in response.content.decode()
    assert not Invitation.objects.exists()


def test_an_invitation_revoked_before_its_email_went_sends_nothing(account):
    owner_membership = account.memberships.get()
    with pytest.raises(MembershipError):
        invitation_create(
            account=account,
            email=account.owner.email,
            role=Role.DEVELOPER,
            actor=account.owner,
            actor_membership=owner_membership,
        )
    invitation, _token = invitation_create(
        account=account,
        email="later@example.com",
        role=Role.DEVELOPER,
        actor=account.owner,
        actor_membership=owner_membership,
    )
    Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now())

    from portal.tasks import invitation_email_send

    invitation_email_send(invitation_id=invitation.pk, token=_token)

    assert mail.outbox == []


def test_the_owner_rule_holds_for_the_service_too(account):
    admin = MembershipFactory(account=account, role=Role.ADMIN)

    with pytest.raises(OwnerOnly):
        invitation_create(
            account=account,
            email="x@example.com",
            role=Role.OWNER,
            actor=admin.user,
            actor_membership=admin,
        )


def test_the_invite_form_offers_developer_unless_another_role_is_chosen(owner_client):
    page = owner_client.get("/organisation/members/").content.decode()

    assert '<option value="developer" selected>' in page
    assert '<option value="owner">' in page
