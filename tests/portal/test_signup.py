import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail

from portal.models import Account

User = get_user_model()


@pytest.mark.django_db
def test_signup_creates_account_on_default_tier_and_sends_confirmation(client):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "new@example.com",
            "password1": "a-Long-passw0rd!",
            "password2": "a-Long-passw0rd!",
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert Account.objects.get(owner=user).tier.is_default
    assert not EmailAddress.objects.get(user=user).verified
    assert len(mail.outbox) == 1
    assert re.search(r"/accounts/confirm-email/\S+/", str(mail.outbox[0].body))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data, error",
    [
        (
            {
                "email": "not-an-email",
                "password1": "a-Long-passw0rd!",
                "password2": "a-Long-passw0rd!",
            },
            "valid email",
        ),
        (
            {
                "email": "x@example.com",
                "password1": "a-Long-passw0rd!",
                "password2": "different-Passw0rd!",
            },
            "same password",
        ),
        ({"email": "x@example.com", "password1": "123", "password2": "123"}, "too short"),
    ],
)
def test_bad_signup_input_shows_errors_and_creates_nothing(client, data, error):
    response = client.post("/accounts/signup/", data)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not User.objects.exists()
    assert not Account.objects.exists()
    assert mail.outbox == []


@pytest.mark.django_db
def test_signup_with_a_taken_email_creates_nothing_and_reveals_nothing(client, owner):
    response = client.post(
        "/accounts/signup/",
        {"email": owner.email, "password1": "a-Long-passw0rd!", "password2": "a-Long-passw0rd!"},
    )

    # The same answer as a fresh signup, so nobody can probe which emails have accounts;
    # the real owner is told by email instead.
    assert response.status_code == 302
    assert User.objects.filter(email=owner.email).count() == 1
    assert Account.objects.count() == 1
    assert [m.to for m in mail.outbox] == [[owner.email]]


@pytest.mark.django_db
def test_unverified_user_cannot_log_in(client, unverified_user):
    from tests.factories import PASSWORD

    response = client.post(
        "/accounts/login/", {"login": unverified_user.email, "password": PASSWORD}
    )

    assert response.status_code == 302
    assert "confirm-email" in response["Location"]
    assert "_auth_user_id" not in client.session
