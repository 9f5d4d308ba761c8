"""Revoking a key: the api_key_revoke service and the revoke button of the keys page."""

import pytest

from portal.models import AuditEntry, Role
from portal.services import api_key_revoke
from tests.factories import ApiKeyFactory, MembershipFactory, UserFactory


@pytest.mark.django_db
def test_revoke_stops_the_key_and_tells_the_cache(client, api_key, bearer, account):
    assert client.get("/v1/me", **bearer).status_code == 200
    version = account.cache_version

    api_key_revoke(key=api_key)

    api_key.refresh_from_db()
    account.refresh_from_db()
    assert api_key.revoked_at is not None
    assert api_key.status == "revoked"
    assert account.cache_version == version + 1
    assert client.get("/v1/me", **bearer).status_code == 401


@pytest.mark.django_db
def test_revoking_twice_keeps_the_first_time(api_key):
    first = api_key_revoke(key=api_key).revoked_at

    assert api_key_revoke(key=api_key).revoked_at == first


@pytest.mark.django_db
def test_an_operator_revoke_is_audited_and_the_owners_is_not(api_key, account, owner):
    operator = UserFactory(is_staff=True)
    other = ApiKeyFactory(account=account)

    api_key_revoke(key=api_key, actor=owner)
    api_key_revoke(key=other, actor=operator, reason="leaked on a forum")

    entry = AuditEntry.objects.get()
    assert entry.actor == operator
    assert entry.action == "api_key.revoke"
    assert entry.target == other.prefix
    assert entry.reason == "leaked on a forum"


@pytest.mark.django_db
def test_revoke_button_revokes(owner_client, api_key, bearer, client):
    response = owner_client.post(f"/keys/{api_key.pk}/revoke/", follow=True)

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert "stops working within 5 seconds" in response.content.decode()
    client.logout()
    assert client.get("/v1/me", **bearer).status_code == 401


@pytest.mark.django_db
def test_outsider_cannot_revoke_someone_elses_key(outsider_client, api_key):
    response = outsider_client.post(f"/keys/{api_key.pk}/revoke/")

    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


@pytest.mark.django_db
def test_revoke_is_post_only(owner_client, api_key):
    assert owner_client.get(f"/keys/{api_key.pk}/revoke/").status_code == 405
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


@pytest.mark.django_db
def test_revoke_needs_the_csrf_token(owner, api_key):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)

    assert strict.post(f"/keys/{api_key.pk}/revoke/").status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


@pytest.mark.django_db
def test_unknown_key_id_is_404(owner_client):
    assert owner_client.post("/keys/999999/revoke/").status_code == 404


@pytest.mark.django_db
def test_an_admin_revoking_a_members_key_is_audited_and_theirs_is_not(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    admin = MembershipFactory(account=account, role=Role.ADMIN).user
    developers_key = ApiKeyFactory(account=account, created_by=developer)
    admins_key = ApiKeyFactory(account=account, created_by=admin)
    client.force_login(admin)

    client.post(f"/keys/{developers_key.pk}/revoke/")
    client.post(f"/keys/{admins_key.pk}/revoke/")

    developers_key.refresh_from_db()
    admins_key.refresh_from_db()
    assert developers_key.revoked_at is not None and admins_key.revoked_at is not None
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target) == (
        admin,
        "api_key.revoke",
        developers_key.prefix,
    )


@pytest.mark.django_db
def test_a_developer_revokes_their_own_key_but_not_a_teammates(client, account):
    developer = MembershipFactory(account=account, role=Role.DEVELOPER).user
    own = ApiKeyFactory(account=account, created_by=developer)
    teammates = ApiKeyFactory(account=account, created_by=account.owner)
    client.force_login(developer)

    assert client.post(f"/keys/{own.pk}/revoke/").status_code == 302
    assert client.post(f"/keys/{teammates.pk}/revoke/").status_code == 404

    own.refresh_from_db()
    teammates.refresh_from_db()
    assert own.revoked_at is not None
    assert teammates.revoked_at is None
    assert not AuditEntry.objects.exists()
