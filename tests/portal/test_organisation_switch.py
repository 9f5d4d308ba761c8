"""Switching between one's organisations from the navigation."""

import pytest

from portal.models import Role
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def test_a_member_of_two_switches_and_every_page_follows(owner_client, owner, account):
    account.name = "Home"
    account.save()
    client_org = AccountFactory(name="Client Co")
    MembershipFactory(account=client_org, user=owner, role=Role.DEVELOPER)

    nav = owner_client.get("/organisation/members/").content.decode()
    assert f'action="/organisations/{client_org.pk}/switch/"' in nav
    response = owner_client.post(f"/organisations/{client_org.pk}/switch/", follow=True)

    assert response.redirect_chain[-1][0] == "/dashboard/"
    assert "You are now in Client Co as Developer." in response.content.decode()
    assert "Members of Client Co" in owner_client.get("/organisation/members/").content.decode()
    owner_client.post(f"/organisations/{account.pk}/switch/")
    assert "Members of Home" in owner_client.get("/organisation/members/").content.decode()


def test_an_organisation_one_is_not_a_member_of_is_a_404(owner_client, outsider):
    other = outsider.owned_accounts.get()

    assert owner_client.post(f"/organisations/{other.pk}/switch/").status_code == 404
    assert str(other) not in owner_client.get("/organisation/members/").content.decode()


def test_switching_is_a_post(owner_client, account):
    assert owner_client.get(f"/organisations/{account.pk}/switch/").status_code == 405
