"""Handing the organisation's ownership to another member."""

import pytest
from django.test import Client

from portal.models import AuditEntry, Role
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def transfer(client, membership):
    return client.post(f"/organisation/members/{membership.pk}/transfer/")


def test_the_owner_hands_over_and_stays_as_an_admin(owner_client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    previous = account.owner

    response = transfer(owner_client, developer)

    assert response.status_code == 302
    account.refresh_from_db()
    developer.refresh_from_db()
    assert account.owner == developer.user
    assert developer.role == Role.OWNER
    assert account.memberships.get(user=previous).role == Role.ADMIN
    entry = AuditEntry.objects.get(action="organisation.transfer")
    assert entry.after == {"owner": developer.user.email}
    # An admin now: no more transfer buttons for them.
    assert "Transfer ownership" not in owner_client.get("/organisation/members/").content.decode()


def test_the_members_page_offers_the_transfer_to_owners_only(owner_client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    admin = MembershipFactory(account=account, role=Role.ADMIN)
    client = Client()
    client.force_login(admin.user)

    assert f"/organisation/members/{developer.pk}/transfer/" in (
        owner_client.get("/organisation/members/").content.decode()
    )
    assert "/transfer/" not in client.get("/organisation/members/").content.decode()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DEVELOPER, Role.BILLING])
def test_no_other_role_may_transfer(client, account, role):
    member = MembershipFactory(account=account, role=role)
    client.force_login(member.user)

    assert transfer(client, member).status_code == 403
    account.refresh_from_db()
    assert account.owner != member.user


def test_a_member_of_another_organisation_is_a_404(owner_client, account):
    elsewhere = MembershipFactory(account=AccountFactory(), role=Role.DEVELOPER)

    assert transfer(owner_client, elsewhere).status_code == 404
    account.refresh_from_db()
    assert account.owner != elsewhere.user


def test_transferring_to_the_owner_themself_is_refused_in_words(owner_client, account):
    response = transfer(owner_client, account.memberships.get(user=account.owner))

    assert response.status_code == 409
    assert "already owns" in response.content.decode()
