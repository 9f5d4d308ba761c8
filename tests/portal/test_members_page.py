"""The members page: who is in the organisation, what they may do there, the keys each made,
and one's own alert emails."""

import pytest
from django.test import Client
from django.utils import timezone

from portal.models import AuditEntry, Role
from tests.factories import ApiKeyFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/organisation/members/"


def rows(page: str) -> list[str]:
    return [chunk.split('"', 1)[0] for chunk in page.split('data-member="')[1:]]


def test_every_member_is_listed_with_role_joined_date_and_the_keys_they_made(owner_client, account):
    developer = MembershipFactory(
        account=account, user=UserFactory(email="grace@example.com"), role=Role.DEVELOPER
    )
    made = ApiKeyFactory(account=account, name="ci", created_by=developer.user)
    revoked = ApiKeyFactory(account=account, created_by=developer.user)
    revoked.revoked_at = timezone.now()
    revoked.save()

    page = owner_client.get(URL).content.decode()

    assert rows(page) == [account.owner.email, "grace@example.com"]
    assert "Developer" in page
    assert developer.created.strftime("%Y-%m-%d") in page
    assert f"{made.prefix}_…" in page
    # Only keys that still work are listed against their maker.
    assert revoked.prefix not in page


@pytest.mark.parametrize("role", list(Role))
def test_every_role_sees_the_members(client, account, role):
    member = account.memberships.get() if role == Role.OWNER else None
    user = member.user if member else MembershipFactory(account=account, role=role).user
    client.force_login(user)

    response = client.get(URL)

    assert response.status_code == 200
    assert account.owner.email in response.content.decode()


def test_a_developer_sees_no_invite_form_role_or_remove_buttons(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    client.force_login(developer.user)

    page = client.get(URL).content.decode()

    assert "Send invitation" not in page
    assert "/role/" not in page
    assert "/remove/" not in page
    assert "/organisation/leave/" in page


def test_an_outsider_sees_only_their_own_organisation(outsider_client, account):
    page = outsider_client.get(URL).content.decode()

    assert account.owner.email not in page


def test_a_visitor_is_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_member_chooses_their_own_alert_emails(account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER)
    client = Client()
    client.force_login(developer.user)
    assert 'name="receives" checked' not in client.get(URL).content.decode()

    client.post("/organisation/alerts/", {"receives": "on"})

    developer.refresh_from_db()
    assert developer.alerted
    assert 'name="receives" checked' in client.get(URL).content.decode()
    client.post("/organisation/alerts/", {})
    developer.refresh_from_db()
    assert developer.receives_alerts is False
    entry = AuditEntry.objects.filter(action="membership.alerts").latest("pk")
    assert (entry.before, entry.after) == ({"receives_alerts": True}, {"receives_alerts": False})


def test_the_navigation_links_the_members_page_and_lists_the_organisations(owner_client, account):
    account.name = "Acme"
    account.save()

    page = owner_client.get("/dashboard/").content.decode()

    assert 'href="/organisation/members/"' in page
    assert 'data-testid="organisation-switcher"' in page
    assert "<strong>Acme</strong> · Owner" in page
