"""manage.py create_api_key EMAIL [--name] [--expires-in-days] [--create-account]."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from portal.models import Account, ApiKey

KEY = re.compile(r"^mdk_test_[a-z0-9]{8}_[A-Za-z0-9]{32}$")


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


@pytest.mark.django_db
def test_prints_a_working_key_once_for_an_existing_developer(client, owner):
    full, note = run(owner.email, "--name", "deploy bot")

    assert KEY.match(full)
    key = ApiKey.objects.get(account__owner=owner)
    assert key.name == "deploy bot"
    assert key.prefix in note and "shown once" in note
    assert full not in note
    assert client.get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {full}").status_code == 200


@pytest.mark.django_db
def test_email_is_matched_without_regard_to_case(owner):
    full, _ = run(owner.email.upper())

    assert ApiKey.objects.get().account.owner == owner
    assert KEY.match(full)


@pytest.mark.django_db
def test_expiry_in_days(owner):
    run(owner.email, "--expires-in-days", "7")

    key = ApiKey.objects.get()
    assert key.expires_at is not None
    assert abs(key.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)


@pytest.mark.django_db
def test_unknown_email_is_a_clear_error(db):
    with pytest.raises(CommandError, match="--create-account"):
        run("nobody@example.com")
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_create_account_makes_a_verified_developer_with_an_account(client):
    full, note = run("new.dev@example.com", "--create-account")

    user = get_user_model().objects.get(email="new.dev@example.com")
    assert EmailAddress.objects.get(user=user).verified
    assert not user.has_usable_password()
    assert Account.objects.get(owner=user).tier.is_default
    assert "Created the developer" in note
    assert client.get("/v1/me", HTTP_X_API_KEY=full).status_code == 200


@pytest.mark.django_db
def test_create_account_reuses_an_existing_developer(owner):
    run(owner.email, "--create-account")

    assert get_user_model().objects.filter(email=owner.email).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-email"], "not an email address"),
        (["a@example.com", "--expires-in-days", "0"], "at least 1"),
        (["a@example.com", "--name", "  "], "name"),
    ],
)
def test_bad_arguments_are_clear_errors(db, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args, "--create-account")
    assert not ApiKey.objects.exists()
