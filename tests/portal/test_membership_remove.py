"""Removing a member from the members page: who may remove whom, and what stays."""

import pytest

from portal.models import AuditEntry, Membership, Role
from tests.factories import AccountFactory, ApiKeyFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def remove(client, membership):
    return client.post(f"/organisation/members/{membership.pk}/remove/")


def test_an_owner_removes_a_developer_whose_keys_keep_working(owner_client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    key = ApiKeyFactory(account=account, created_by=developer.user)

    response = remove(owner_client, developer)

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=developer.pk).exists()
    key.refresh_from_db()
    assert key.is_active()
    page = owner_client.get("/organisation/members/").content.decode()
    assert f"{developer.user.email} is no longer a member. The 1 key they made keep working" in (
        page
    )
    entry = AuditEntry.objects.get(action="membership.remove")
    assert entry.after["keys_still_working"] == [key.prefix]


def test_the_removed_member_is_locked_out_at_their_next_request(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    client.force_login(developer.user)
    assert f"Members of {account}" in client.get("/organisation/members/").content.decode()

    owner_client = type(client)()
    owner_client.force_login(account.owner)
    remove(owner_client, developer)

    page = client.get("/organisation/members/").content.decode()
    assert f"Members of {account}" not in page
    assert client.post(f"/organisations/{account.pk}/switch/").status_code == 404


def test_an_admin_removes_a_developer_but_not_an_owner(client, account):
    admin = MembershipFactory(account=account, role=Role.ADMIN)
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    owner_membership = account.memberships.get(user=account.owner)
    client.force_login(admin.user)

    assert remove(client, developer).status_code == 302
    refused = remove(client, owner_membership)

    assert refused.status_code == 403
    assert "Only an owner" in refused.content.decode()
    assert Membership.objects.filter(pk=owner_membership.pk).exists()


def test_the_page_offers_an_admin_no_remove_button_on_an_owner(client, account):
    admin = MembershipFactory(account=account, role=Role.ADMIN)
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    owner_membership = account.memberships.get(user=account.owner)
    client.force_login(admin.user)

    page = client.get("/organisation/members/").content.decode()

    assert f"/organisation/members/{developer.pk}/remove/" in page
    assert f"/organisation/members/{owner_membership.pk}/remove/" not in page


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.BILLING])
def test_a_developer_or_billing_member_may_not_remove(client, account, role):
    other = MembershipFactory(account=account, role=Role.DEVELOPER)
    client.force_login(MembershipFactory(account=account, role=role).user)

    assert remove(client, other).status_code == 403
    assert Membership.objects.filter(pk=other.pk).exists()


def test_a_member_of_another_organisation_is_a_404(owner_client, account):
    elsewhere = MembershipFactory(account=AccountFactory(), role=Role.DEVELOPER)

    assert remove(owner_client, elsewhere).status_code == 404
    assert Membership.objects.filter(pk=elsewhere.pk).exists()


def test_an_outsider_is_a_404(outsider_client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)

    assert remove(outsider_client, developer).status_code == 404


def test_the_last_owner_cannot_be_removed_by_another_owner_demoted_first(client, account):
    co_owner = MembershipFactory(account=account, role=Role.OWNER)
    owner_membership = account.memberships.get(user=account.owner)
    client.force_login(co_owner.user)

    assert remove(client, owner_membership).status_code == 302
    account.refresh_from_db()
    # The primary owner moved to the one owner left.
    assert account.owner == co_owner.user
