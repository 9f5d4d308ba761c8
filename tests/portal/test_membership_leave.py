"""Leaving an organisation: refused to its last owner, and at once for everyone else."""

import pytest

from portal.models import AuditEntry, Membership, Role
from tests.factories import AccountFactory, ApiKeyFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def developer(account):
    """A developer of ``account`` who also owns an organisation of their own."""
    own = AccountFactory()
    own.name = "Home"
    own.save()
    return MembershipFactory(account=account, user=own.owner, role=Role.DEVELOPER)


def test_a_member_leaves_and_cannot_reach_the_organisation_again(client, account, developer):
    account.name = "Acme"
    account.save()
    key = ApiKeyFactory(account=account, created_by=developer.user)
    client.force_login(developer.user)
    client.post(f"/organisations/{account.pk}/switch/")

    response = client.post("/organisation/leave/", follow=True)

    assert response.redirect_chain[-1][0] == "/dashboard/"
    assert "You left Acme." in response.content.decode()
    assert not Membership.objects.filter(pk=developer.pk).exists()
    after = client.get("/organisation/members/").content.decode()
    assert "Members of Home" in after
    assert "Members of Acme" not in after
    assert client.post(f"/organisations/{account.pk}/switch/").status_code == 404
    key.refresh_from_db()
    assert key.is_active()
    entry = AuditEntry.objects.get(action="membership.leave")
    assert entry.actor == developer.user


def test_the_last_owner_cannot_leave(owner_client, account):
    response = owner_client.post("/organisation/leave/")

    assert response.status_code == 409
    assert "must keep an owner" in response.content.decode()
    assert account.memberships.filter(user=account.owner, role=Role.OWNER).exists()


def test_an_owner_leaves_once_another_owner_is_there(owner_client, account):
    co_owner = MembershipFactory(account=account, role=Role.OWNER)

    assert owner_client.post("/organisation/leave/").status_code == 302

    account.refresh_from_db()
    assert account.owner == co_owner.user


def test_someone_who_left_their_only_organisation_gets_a_personal_one(client, account):
    member = MembershipFactory(account=account, role=Role.BILLING)
    client.force_login(member.user)

    client.post("/organisation/leave/")
    page = client.get("/organisation/members/")

    assert page.status_code == 200
    assert member.user.memberships.get().role == Role.OWNER
    assert member.user.memberships.get().account != account


def test_the_members_page_offers_leave_on_ones_own_row_only(client, account, developer):
    client.force_login(developer.user)
    client.post(f"/organisations/{account.pk}/switch/")

    page = client.get("/organisation/members/").content.decode()

    assert page.count("/organisation/leave/") == 1
