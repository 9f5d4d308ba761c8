"""Changing a member's role from the members page."""

import pytest
from django.test import Client

from portal.models import AuditEntry, Role
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def change(client, membership, role):
    return client.post(f"/organisation/members/{membership.pk}/role/", {"role": role})


def test_an_owner_changes_a_role_and_it_holds_at_once(owner_client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)

    response = change(owner_client, developer, Role.BILLING)

    assert response.status_code == 302
    developer.refresh_from_db()
    assert developer.role == Role.BILLING
    entry = AuditEntry.objects.get(action="membership.role_change")
    assert (entry.before, entry.after) == ({"role": "developer"}, {"role": "billing"})
    client = Client()
    client.force_login(developer.user)
    assert "Billing" in client.get("/organisation/members/").content.decode()


def test_an_owner_makes_another_owner(owner_client, account):
    admin = MembershipFactory(account=account, role=Role.ADMIN)

    assert change(owner_client, admin, Role.OWNER).status_code == 302
    admin.refresh_from_db()
    assert admin.role == Role.OWNER


def test_an_admin_may_not_make_an_owner_nor_demote_one(client, account):
    admin = MembershipFactory(account=account, role=Role.ADMIN)
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    owner_membership = account.memberships.get(user=account.owner)
    client.force_login(admin.user)

    made_owner = change(client, developer, Role.OWNER)
    demoted = change(client, owner_membership, Role.DEVELOPER)

    assert made_owner.status_code == demoted.status_code == 403
    assert "Only an owner" in made_owner.content.decode()
    developer.refresh_from_db()
    owner_membership.refresh_from_db()
    assert (developer.role, owner_membership.role) == (Role.DEVELOPER, Role.OWNER)


def test_an_admin_changes_a_developer_to_billing(client, account):
    admin = MembershipFactory(account=account, role=Role.ADMIN)
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    client.force_login(admin.user)

    assert change(client, developer, Role.BILLING).status_code == 302


def test_the_last_owner_cannot_be_demoted(owner_client, account):
    owner_membership = account.memberships.get(user=account.owner)

    # Their own row has no role form; a crafted request is refused all the same.
    response = change(owner_client, owner_membership, Role.ADMIN)

    assert response.status_code == 409
    assert "must keep an owner" in response.content.decode()
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.BILLING])
def test_a_developer_or_billing_member_may_not_change_roles(client, account, role):
    other = MembershipFactory(account=account, role=Role.DEVELOPER)
    client.force_login(MembershipFactory(account=account, role=role).user)

    assert change(client, other, Role.ADMIN).status_code == 403
    other.refresh_from_db()
    assert other.role == Role.DEVELOPER


def test_another_organisations_member_is_a_404(owner_client):
    elsewhere = MembershipFactory(account=AccountFactory(), role=Role.DEVELOPER)

    assert change(owner_client, elsewhere, Role.ADMIN).status_code == 404
    elsewhere.refresh_from_db()
    assert elsewhere.role == Role.DEVELOPER


def test_a_made_up_role_is_a_400(owner_client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)

    assert change(owner_client, developer, "emperor").status_code == 400
