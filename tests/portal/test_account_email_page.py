"""/accounts/email/ is a page of the portal, reached from its header (issue 16).

It rendered allauth's bare form (a full-width radio button, every action a primary button) and
nothing linked to it.
"""

import re

import pytest
from allauth.account.models import EmailAddress

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_the_header_links_to_the_account_settings(owner_client):
    page = owner_client.get("/dashboard/").content.decode()

    # The settings page, whose menu and email section lead to this page.
    assert re.search(r'<a href="/account/"\s*>Account</a>', page)
    assert 'href="/accounts/email/"' in owner_client.get("/account/").content.decode()


def test_the_page_lists_the_addresses_with_their_state_and_the_account_menu(owner_client, owner):
    EmailAddress.objects.create(user=owner, email="second@meterdesk.test", verified=False)

    response = owner_client.get("/accounts/email/")
    page = response.content.decode()

    assert response.status_code == 200
    assert 'aria-label="Account settings"' in page
    assert re.search(r'href="/accounts/email/"\s+aria-current="page"', page)
    assert 'href="/accounts/password/change/"' in page and 'href="/accounts/2fa/"' in page
    assert f'<span class="email-address">{owner.email}</span>' in page
    assert '<span class="badge">Primary</span>' in page
    assert '<span class="badge warn">Not verified</span>' in page
    assert 'class="small danger">Remove</button>' in page


def test_adding_an_address_still_works(owner_client, owner):
    response = owner_client.post(
        "/accounts/email/", {"action_add": "", "email": "work@meterdesk.test"}
    )

    assert response.status_code == 302
    assert EmailAddress.objects.filter(user=owner, email="work@meterdesk.test").exists()


def test_a_second_address_can_be_made_primary(owner_client, owner):
    EmailAddress.objects.create(user=owner, email="work@meterdesk.test", verified=True)

    owner_client.post("/accounts/email/", {"action_primary": "", "email": "work@meterdesk.test"})

    assert EmailAddress.objects.get(user=owner, email="work@meterdesk.test").primary


def test_the_password_page_has_the_same_menu(client, owner):
    client.login(username=owner.username, password=PASSWORD)

    page = client.get("/accounts/password/change/").content.decode()

    assert 'aria-label="Account settings"' in page
    assert re.search(r'href="/accounts/password/change/"\s+aria-current="page"', page)
