"""Creating an API key: the api_key_create service and the "Create a key" page."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from portal.models import ApiKey, Role
from portal.services import MAX_ACTIVE_KEYS_PER_ACCOUNT, ApiKeyError, api_key_create
from tests.factories import ApiKeyFactory, MembershipFactory

KEY_FORMAT = re.compile(r"^mdk_(live|test)_[a-z0-9]{8}_[A-Za-z0-9]{32}$")


@pytest.mark.django_db
def test_a_new_key_has_the_documented_format_and_only_its_hash_is_stored(account):
    key, full = api_key_create(account=account, name="server")

    assert KEY_FORMAT.match(full)
    assert full.startswith(f"{key.prefix}_")
    assert key.prefix.startswith("mdk_test_")
    secret = full.rsplit("_", 1)[1]
    assert key.secret_hash == ApiKey.hash_secret(secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM portal_apikey")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert secret not in stored


@pytest.mark.django_db
def test_live_mode_keys_say_live(account, settings):
    settings.STRIPE_LIVE_MODE = True

    _key, full = api_key_create(account=account, name="prod")

    assert full.startswith("mdk_live_")


@pytest.mark.django_db
def test_a_new_key_works_on_the_api(client, account):
    _key, full = api_key_create(account=account, name="server")

    assert client.get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {full}").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["", "   "])
def test_a_key_needs_a_name(account, name):
    with pytest.raises(ApiKeyError):
        api_key_create(account=account, name=name)
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_an_expiry_in_the_past_is_refused(account):
    with pytest.raises(ApiKeyError):
        api_key_create(account=account, name="x", expires_at=timezone.now())


@pytest.mark.django_db
def test_an_account_holds_a_bounded_number_of_active_keys(account):
    ApiKeyFactory.create_batch(MAX_ACTIVE_KEYS_PER_ACCOUNT, account=account)
    with pytest.raises(ApiKeyError, match="revoke one first"):
        api_key_create(account=account, name="one too many")

    # Revoked keys do not count.
    ApiKey.objects.filter(pk=ApiKey.objects.all()[0].pk).update(revoked_at=timezone.now())
    api_key_create(account=account, name="now it fits")


@pytest.mark.django_db
def test_create_page_shows_a_form(owner_client):
    response = owner_client.get("/keys/new/")

    assert response.status_code == 200
    assert 'name="name"' in response.content.decode()
    assert 'name="expires_in_days"' in response.content.decode()


@pytest.mark.django_db
def test_creating_a_key_shows_the_secret_exactly_once(owner_client, account):
    response = owner_client.post("/keys/new/", {"name": "CI", "expires_in_days": ""}, follow=True)

    key = ApiKey.objects.get(account=account)
    page = response.content.decode()
    match = re.search(r'<code id="new-key"[^>]*>([^<]+)</code>', page)
    assert match, "the new key is shown in the secret box"
    full = match.group(1)
    assert full.startswith(key.prefix + "_")
    assert key.matches(full.rsplit("_", 1)[1])
    assert 'data-copy="#new-key"' in page
    assert "no-store" in response["Cache-Control"]

    again = owner_client.get("/keys/").content.decode()
    assert full not in again
    assert key.prefix in again


@pytest.mark.django_db
def test_expiry_choice_sets_the_expiry(owner_client, account):
    owner_client.post("/keys/new/", {"name": "temp", "expires_in_days": "30"})

    key = ApiKey.objects.get(account=account)
    assert key.expires_at is not None
    assert abs((key.expires_at - timezone.now()) - timedelta(days=30)) < timedelta(minutes=1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data", [{"name": ""}, {"name": "x", "expires_in_days": "999"}, {"name": "x" * 101}]
)
def test_bad_input_is_a_400_and_creates_nothing(owner_client, data):
    response = owner_client.post("/keys/new/", data)

    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_limit_reached_is_shown_on_the_form(owner_client, account):
    ApiKeyFactory.create_batch(MAX_ACTIVE_KEYS_PER_ACCOUNT, account=account)

    response = owner_client.post("/keys/new/", {"name": "extra"})

    assert response.status_code == 400
    assert "revoke one first" in response.content.decode()


@pytest.mark.django_db
def test_create_needs_login(client):
    response = client.post("/keys/new/", {"name": "x"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_a_key_records_the_member_who_made_it(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    client.force_login(developer)

    client.post("/keys/new/", {"name": "CI"})

    key = ApiKey.objects.get(account=account)
    assert key.created_by == developer
