"""Rolling a key: a new secret, the old one working for a grace period, then stopping."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.keys.cache import KeyRejected, key_cache
from portal.models import ApiKey, Role
from portal.services import ApiKeyError, api_key_revoke, api_key_roll
from tests.factories import ApiKeyFactory, MembershipFactory


@pytest.mark.django_db
def test_roll_issues_a_new_key_and_keeps_the_old_one_for_the_grace(client, api_key):
    before = timezone.now()

    new_key, full = api_key_roll(key=api_key, grace=timedelta(hours=1))

    api_key.refresh_from_db()
    assert api_key.replaced_by == new_key
    assert api_key.status == "rolling"
    assert before + timedelta(hours=1) <= api_key.expires_at <= timezone.now() + timedelta(hours=1)
    assert new_key.name == api_key.name
    assert new_key.prefix != api_key.prefix
    assert client.get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {full}").status_code == 200
    assert client.get("/v1/me", HTTP_X_API_KEY=api_key.plaintext).status_code == 200


@pytest.mark.django_db
def test_after_the_grace_the_old_key_stops_even_if_cached(api_key):
    key_cache.resolve(api_key.plaintext)
    api_key_roll(key=api_key, grace=timedelta(hours=1))
    key_cache.resolve(api_key.plaintext)  # cached again, with its new expiry

    with pytest.raises(KeyRejected) as refused:
        key_cache.resolve(api_key.plaintext, now=timezone.now() + timedelta(hours=1, seconds=1))
    assert refused.value.reason == "expired"


@pytest.mark.django_db
def test_zero_grace_stops_the_old_key_now(client, api_key, bearer):
    assert client.get("/v1/me", **bearer).status_code == 200

    api_key_roll(key=api_key, grace=timedelta(0))

    response = client.get("/v1/me", **bearer)
    assert response.status_code == 401
    assert response.json()["reason"] == "expired"


@pytest.mark.django_db
def test_the_new_key_keeps_the_old_keys_expiry_date(account):
    expires = timezone.now() + timedelta(days=30)
    key = ApiKeyFactory(account=account, expires_at=expires)

    new_key, _ = api_key_roll(key=key, grace=timedelta(days=7))

    key.refresh_from_db()
    assert new_key.expires_at == expires
    assert key.expires_at is not None
    assert key.expires_at < expires


@pytest.mark.django_db
def test_grace_never_extends_a_key_past_its_own_expiry(account):
    expires = timezone.now() + timedelta(minutes=10)
    key = ApiKeyFactory(account=account, expires_at=expires)

    api_key_roll(key=key, grace=timedelta(days=1))

    key.refresh_from_db()
    assert key.expires_at == expires


@pytest.mark.django_db
def test_a_revoked_key_cannot_be_rolled(api_key):
    api_key_revoke(key=api_key)

    with pytest.raises(ApiKeyError):
        api_key_roll(key=api_key, grace=timedelta(0))


@pytest.mark.django_db
def test_a_key_is_rolled_once(api_key):
    api_key_roll(key=api_key, grace=timedelta(hours=1))

    with pytest.raises(ApiKeyError, match="already rolled"):
        api_key_roll(key=api_key, grace=timedelta(hours=1))


@pytest.mark.django_db
@pytest.mark.parametrize("grace", [timedelta(seconds=-1), timedelta(days=8)])
def test_grace_is_bounded(api_key, grace):
    with pytest.raises(ApiKeyError):
        api_key_roll(key=api_key, grace=grace)
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_roll_button_shows_the_new_secret_once(owner_client, api_key):
    response = owner_client.post(
        f"/keys/{api_key.pk}/roll/", {"grace_seconds": "86400"}, follow=True
    )

    page = response.content.decode()
    match = re.search(r'<code id="new-key"[^>]*>([^<]+)</code>', page)
    assert match
    api_key.refresh_from_db()
    assert match.group(1).startswith(api_key.replaced_by.prefix + "_")
    assert "keeps working until" in page
    assert "Rolling" in page
    assert match.group(1) not in owner_client.get("/keys/").content.decode()


@pytest.mark.django_db
def test_outsider_cannot_roll_someone_elses_key(outsider_client, api_key):
    response = outsider_client.post(f"/keys/{api_key.pk}/roll/", {"grace_seconds": "0"})

    assert response.status_code == 404
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_roll_with_a_made_up_grace_is_a_400(owner_client, api_key):
    response = owner_client.post(f"/keys/{api_key.pk}/roll/", {"grace_seconds": "31536000"})

    assert response.status_code == 400
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_rolling_a_revoked_key_from_the_page_is_a_400(owner_client, api_key):
    api_key_revoke(key=api_key)

    response = owner_client.post(f"/keys/{api_key.pk}/roll/", {"grace_seconds": "0"})

    assert response.status_code == 400
    assert "Only a working key can be rolled" in response.content.decode()


@pytest.mark.django_db
def test_roll_is_post_only(owner_client, api_key):
    assert owner_client.get(f"/keys/{api_key.pk}/roll/").status_code == 405


@pytest.mark.django_db
def test_an_admin_rolls_a_members_key_and_makes_its_replacement(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    admin = MembershipFactory(account=account, role=Role.ADMIN).user
    key = ApiKeyFactory(account=account, created_by=developer)
    client.force_login(admin)

    response = client.post(f"/keys/{key.pk}/roll/", {"grace_seconds": "0"})

    assert response.status_code == 200
    replacement = ApiKey.objects.get(replaces=key)
    assert replacement.created_by == admin


@pytest.mark.django_db
def test_a_developer_cannot_roll_a_key_they_did_not_make(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    key = ApiKeyFactory(account=account, created_by=account.owner)
    client.force_login(developer)

    response = client.post(f"/keys/{key.pk}/roll/", {"grace_seconds": "0"})

    assert response.status_code == 404
    key.refresh_from_db()
    assert key.replaced_by is None
