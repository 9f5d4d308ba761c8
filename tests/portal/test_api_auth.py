"""Authenticating API calls with a key: ApiKeyAuthentication on /v1/me."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.keys.cache import key_cache
from tests.factories import ApiKeyFactory

ME = "/v1/me"
PROBLEM = "application/problem+json"


def assert_unauthenticated(response, reason: str) -> None:
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    body = response.json()
    assert body["status"] == 401
    assert body["reason"] == reason
    assert body["type"].endswith("/problems/unauthenticated/")


@pytest.mark.django_db
def test_bearer_key_authenticates(client, api_key):
    response = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}")

    assert response.status_code == 200
    assert response.json()["key"]["prefix"] == api_key.prefix


@pytest.mark.django_db
def test_x_api_key_header_authenticates(client, api_key):
    response = client.get(ME, HTTP_X_API_KEY=api_key.plaintext)

    assert response.status_code == 200
    assert response.json()["account"]["id"] == api_key.account_id


@pytest.mark.django_db
def test_bearer_scheme_is_case_insensitive(client, api_key):
    assert client.get(ME, HTTP_AUTHORIZATION=f"bearer {api_key.plaintext}").status_code == 200


@pytest.mark.django_db
def test_no_key_is_401_missing(client):
    assert_unauthenticated(client.get(ME), "missing")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_AUTHORIZATION": "Bearer not-a-key"},
        {"HTTP_AUTHORIZATION": "Bearer mdk_test_abcdefgh_tooShort"},
        {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
        {"HTTP_AUTHORIZATION": "Bearer"},
        {"HTTP_X_API_KEY": "mdk_prod_abcdefgh_" + "a" * 32},
        {"HTTP_X_API_KEY": "mdk_test_ABCDEFGH_" + "a" * 32},
    ],
)
def test_malformed_key_is_refused_without_touching_the_database(
    client, header, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get(ME, **header)

    assert_unauthenticated(response, "malformed")


@pytest.mark.django_db
def test_key_with_extra_characters_is_malformed(client, api_key):
    response = client.get(ME, HTTP_X_API_KEY=api_key.plaintext + "x")

    assert_unauthenticated(response, "malformed")


@pytest.mark.django_db
def test_unknown_key_is_401(client):
    response = client.get(ME, HTTP_AUTHORIZATION="Bearer mdk_test_abcdefgh_" + "a" * 32)

    assert_unauthenticated(response, "unknown")


@pytest.mark.django_db
def test_right_prefix_wrong_secret_is_401_unknown(client, api_key):
    forged = api_key.prefix + "_" + "Z" * 32

    assert_unauthenticated(client.get(ME, HTTP_AUTHORIZATION=f"Bearer {forged}"), "unknown")
    # Also once the genuine key is cached: the secret is still compared.
    assert client.get(ME, HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}").status_code == 200
    assert_unauthenticated(client.get(ME, HTTP_AUTHORIZATION=f"Bearer {forged}"), "unknown")


@pytest.mark.django_db
def test_expired_key_is_401_expired(client, account):
    key = ApiKeyFactory(account=account, expires_at=timezone.now() - timedelta(seconds=1))

    assert_unauthenticated(client.get(ME, HTTP_X_API_KEY=key.plaintext), "expired")


@pytest.mark.django_db
def test_revoked_key_is_401_revoked(client, account):
    key = ApiKeyFactory(account=account, revoked_at=timezone.now())

    assert_unauthenticated(client.get(ME, HTTP_X_API_KEY=key.plaintext), "revoked")


@pytest.mark.django_db
def test_warm_authenticated_call_runs_no_sql(client, bearer, django_assert_num_queries):
    # Cold: the key (with account and tier) and the period's credits are read, then cached;
    # the limiter may seed its quota counter from the database on the first call of a period.
    assert client.get(ME, **bearer).status_code == 200
    assert client.get(ME, **bearer).status_code == 200

    with django_assert_num_queries(0):
        response = client.get(ME, **bearer)

    assert response.status_code == 200


@pytest.mark.django_db
def test_warm_billed_call_runs_no_sql(client, bearer, django_assert_num_queries):
    assert client.get("/v1/lookup?q=7", **bearer).status_code == 200

    with django_assert_num_queries(0):
        response = client.get("/v1/lookup?q=7", **bearer)

    assert response.status_code == 200


@pytest.mark.django_db
def test_cold_call_reads_the_key_in_two_queries(client, api_key, django_assert_max_num_queries):
    key_cache.clear()
    with django_assert_max_num_queries(2):
        key_cache.resolve(api_key.plaintext)


@pytest.mark.django_db
def test_request_user_is_the_key_not_a_user_row(rf, api_key):
    from portal.api.authentication import ApiKeyAuthentication, ApiKeyUser

    request = rf.get(ME, HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}")
    authenticated = ApiKeyAuthentication().authenticate(request)
    assert authenticated is not None
    user, principal = authenticated

    assert isinstance(user, ApiKeyUser)
    assert user.is_authenticated
    assert principal.account_id == api_key.account_id
