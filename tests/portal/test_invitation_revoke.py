"""Revoking an open invitation from the members page."""

import pytest

from portal.models import AuditEntry, Invitation, Role
from portal.organisations import invitation_create
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def invited(account, email="ada@example.com", role=Role.DEVELOPER) -> tuple[Invitation, str]:
    return invitation_create(
        account=account, email=email, role=role, actor=account.owner, actor_membership=None
    )


def revoke(client, invitation):
    return client.post(f"/organisation/invitations/{invitation.pk}/revoke/")


def test_an_owner_revokes_and_the_link_stops_working(owner_client, account):
    invitation, token = invited(account)

    response = revoke(owner_client, invitation)

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == "revoked"
    assert owner_client.get(f"/invitations/{token}/").status_code == 410
    assert "ada@example.com as" not in owner_client.get("/organisation/members/").content.decode()
    entry = AuditEntry.objects.get(action="invitation.revoke")
    assert (entry.actor, entry.target) == (account.owner, "ada@example.com")


def test_revoking_twice_is_harmless(owner_client, account):
    invitation, _token = invited(account)
    revoke(owner_client, invitation)

    assert revoke(owner_client, invitation).status_code == 302
    assert AuditEntry.objects.filter(action="invitation.revoke").count() == 1


def test_an_admin_revokes_a_developers_invitation_but_not_an_owners(client, account):
    admin = MembershipFactory(account=account, role=Role.ADMIN).user
    developer_invitation, _ = invited(account, "dev@example.com")
    owner_invitation, _ = invited(account, "boss@example.com", Role.OWNER)
    client.force_login(admin)

    assert revoke(client, developer_invitation).status_code == 302
    refused = revoke(client, owner_invitation)

    assert refused.status_code == 403
    owner_invitation.refresh_from_db()
    assert owner_invitation.status == "open"


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.BILLING])
def test_a_member_who_may_not_invite_may_not_revoke(client, account, role):
    invitation, _token = invited(account)
    client.force_login(MembershipFactory(account=account, role=role).user)

    assert revoke(client, invitation).status_code == 403
    invitation.refresh_from_db()
    assert invitation.status == "open"


def test_another_organisations_invitation_is_a_404(outsider_client, account):
    invitation, _token = invited(account)

    assert revoke(outsider_client, invitation).status_code == 404
    invitation.refresh_from_db()
    assert invitation.status == "open"


def test_an_accepted_invitation_cannot_be_revoked(owner_client, account):
    invitation, _token = invited(account)
    Invitation.objects.filter(pk=invitation.pk).update(accepted_by=AccountFactory().owner)
    from django.utils import timezone

    Invitation.objects.filter(pk=invitation.pk).update(accepted_at=timezone.now())

    response = revoke(owner_client, invitation)

    assert response.status_code == 409
    assert "remove them from the members instead" in response.content.decode()
