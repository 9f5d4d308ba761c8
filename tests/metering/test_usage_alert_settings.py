"""POST /usage/alerts/: the developer turns the courtesy usage alert emails off and on."""

import re

import pytest

from portal.models import Account, Role
from tests.factories import MembershipFactory

URL = "/usage/alerts/"


@pytest.mark.django_db
def test_unchecking_the_box_opts_out_and_says_what_still_comes(owner_client, owner):
    response = owner_client.post(URL, {"next": "/dashboard/"}, follow=True)

    assert response.redirect_chain == [("/dashboard/", 302)]
    assert Account.objects.get(owner=owner).alerts_opt_out is True
    page = response.content.decode()
    assert "you still get an email at 100 % and above" in page
    assert "checked" not in checkbox(page)


@pytest.mark.django_db
def test_checking_the_box_opts_back_in(owner_client, owner):
    Account.objects.filter(owner=owner).update(alerts_opt_out=True)

    owner_client.post(URL, {"courtesy_alerts": "on"})

    assert Account.objects.get(owner=owner).alerts_opt_out is False
    page = owner_client.get("/dashboard/").content.decode()
    assert "Email me at 80 % of my included units" in page
    assert "checked" in checkbox(page)


@pytest.mark.django_db
def test_a_developer_changes_only_their_own_account(owner_client, owner, outsider):
    owner_client.post(URL, {})

    assert Account.objects.get(owner=outsider).alerts_opt_out is False


@pytest.mark.django_db
def test_an_outside_redirect_target_is_replaced_by_the_dashboard(owner_client):
    response = owner_client.post(URL, {"next": "https://evil.example.com/"})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"


@pytest.mark.django_db
def test_get_is_not_allowed_and_changes_nothing(owner_client, owner):
    response = owner_client.get(URL)

    assert response.status_code == 405
    assert Account.objects.get(owner=owner).alerts_opt_out is False


@pytest.mark.django_db
def test_signed_out_visitors_are_sent_to_log_in(client):
    response = client.post(URL, {})

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def checkbox(page: str) -> str:
    found = re.search(r'<input type="checkbox" name="courtesy_alerts"[^>]*>', page)
    assert found is not None
    return found.group(0)


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "status"), [(Role.BILLING, 302), (Role.DEVELOPER, 403)])
def test_owners_and_billing_members_set_it_for_the_organisation(client, account, role, status):
    client.force_login(MembershipFactory(account=account, role=role).user)

    response = client.post(URL, {})

    assert response.status_code == status
    account.refresh_from_db()
    assert account.alerts_opt_out is (status == 302)
