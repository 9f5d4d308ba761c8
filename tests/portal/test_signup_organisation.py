"""Signup names the developer's organisation (optional)."""

import pytest
from django.contrib.auth import get_user_model

from portal.models import Account, Role

pytestmark = pytest.mark.django_db

PASSWORD = "a-Long-passw0rd!"


def sign_up(client, **extra):
    return client.post(
        "/accounts/signup/",
        {"email": "ada@example.com", "password1": PASSWORD, "password2": PASSWORD, **extra},
    )


def test_the_signup_form_asks_for_an_organisation_name(client):
    page = client.get("/accounts/signup/").content.decode()

    assert 'name="organisation_name"' in page
    assert page.index('name="password2"') < page.index('name="organisation_name"')


def test_the_named_organisation_is_made_with_the_developer_as_owner(client):
    assert sign_up(client, organisation_name="  Analytical Engines  ").status_code == 302

    user = get_user_model().objects.get(email="ada@example.com")
    account = Account.objects.get(owner=user)
    assert account.name == "Analytical Engines"
    assert account.memberships.get().role == Role.OWNER


def test_left_blank_it_is_named_after_the_developer(client):
    sign_up(client)

    assert Account.objects.get().name == "ada's organisation"
