"""Which key a call presents when it sends Authorization, X-API-Key or both: a header that is
sent must hold a key, and two headers must hold the same one (neither silently wins)."""

import pytest

from metering.limiter import get_limiter
from tests.factories import ApiKeyFactory
from tests.portal.test_api_auth import ME, assert_unauthenticated

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_authorization_header_is_malformed_even_beside_a_valid_x_api_key(
    client, api_key, empty, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get(ME, HTTP_AUTHORIZATION=empty, HTTP_X_API_KEY=api_key.plaintext)

    assert_unauthenticated(response, "malformed")
    assert "Authorization header is empty" in response.json()["detail"]


def test_an_empty_authorization_header_alone_is_malformed_not_missing(client):
    assert_unauthenticated(client.get(ME, HTTP_AUTHORIZATION=""), "malformed")


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_x_api_key_header_is_malformed_even_beside_a_valid_bearer(client, bearer, empty):
    response = client.get(ME, HTTP_X_API_KEY=empty, **bearer)

    assert_unauthenticated(response, "malformed")
    assert "X-API-Key header is empty" in response.json()["detail"]


def test_two_different_keys_are_refused_whichever_is_valid(
    client, api_key, account, django_assert_num_queries
):
    other = ApiKeyFactory(account=account, name="other")
    stranger = ApiKeyFactory()

    for bearer_key, header_key in [
        (api_key.plaintext, other.plaintext),
        (other.plaintext, api_key.plaintext),
        (api_key.plaintext, stranger.plaintext),
        (api_key.plaintext, f"{api_key.prefix}_{'x' * 32}"),
    ]:
        with django_assert_num_queries(0):
            response = client.get(
                ME, HTTP_AUTHORIZATION=f"Bearer {bearer_key}", HTTP_X_API_KEY=header_key
            )

        assert_unauthenticated(response, "malformed")
        assert "send the key in one header" in response.json()["detail"]


def test_the_same_key_in_both_headers_is_accepted(client, api_key):
    response = client.get(
        ME,
        HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}",
        HTTP_X_API_KEY=f" {api_key.plaintext} ",
    )

    assert response.status_code == 200
    assert response.json()["key"]["prefix"] == api_key.prefix


def test_a_refused_header_pair_never_reaches_the_counters(client, api_key, account):
    """Refused at authentication: nothing is counted or billed for it."""
    other = ApiKeyFactory(account=account)

    client.get(ME, HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}", HTTP_X_API_KEY=other.plaintext)

    assert get_limiter().live_usage(account.pk) == {}
