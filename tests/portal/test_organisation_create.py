"""Making a new organisation and renaming one, from the organisation settings page."""

import pytest
from django.test import Client

from portal.models import Account, AuditEntry, Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_anyone_signed_in_makes_an_organisation_and_looks_at_it(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    client.force_login(developer)

    response = client.post("/organisations/new/", {"create-name": "Side project"}, follow=True)

    assert response.redirect_chain[-1][0] == "/organisation/members/"
    assert "Members of Side project" in response.content.decode()
    made = Account.objects.get(name="Side project")
    assert made.owner == developer
    assert made.memberships.get().role == Role.OWNER
    assert developer.memberships.count() == 2
    entry = AuditEntry.objects.get(action="organisation.create")
    assert (entry.actor, entry.account) == (developer, made)


def test_a_blank_name_is_a_400(owner_client):
    response = owner_client.post("/organisations/new/", {"create-name": "   "})

    assert response.status_code == 400
    assert "Give the organisation a name" in response.content.decode() or (
        "This field is required" in response.content.decode()
    )
    assert Account.objects.count() == 1


def test_an_owner_or_admin_renames(owner_client, account):
    assert owner_client.post("/organisation/rename/", {"rename-name": "Acme"}).status_code == 302
    account.refresh_from_db()
    assert account.name == "Acme"

    client = Client()
    client.force_login(MembershipFactory(account=account, role=Role.ADMIN).user)
    assert client.post("/organisation/rename/", {"rename-name": "Acme Ltd"}).status_code == 302
    account.refresh_from_db()
    assert account.name == "Acme Ltd"
    assert AuditEntry.objects.filter(action="account.rename").count() == 2


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.BILLING])
def test_a_developer_or_billing_member_may_not_rename(client, account, role):
    client.force_login(MembershipFactory(account=account, role=role).user)

    assert client.post("/organisation/rename/", {"rename-name": "Mine"}).status_code == 403
    assert "Rename" not in client.get("/organisation/").content.decode()
    account.refresh_from_db()
    assert account.name != "Mine"


def test_the_settings_page_names_the_organisation_and_links_to_members(owner_client, account):
    account.name = "Acme"
    account.save()

    page = owner_client.get("/organisation/").content.decode()

    assert "<h1>Acme</h1>" in page
    assert 'href="/organisation/members/"' in page
