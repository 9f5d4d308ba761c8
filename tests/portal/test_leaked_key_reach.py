"""What a leaked API key opens: the API as its account, within its tier, and nothing else. The
portal's pages, the billing pages and the admin go by session, never by key."""

import pytest

pytestmark = pytest.mark.django_db

PAGES = ["/dashboard/", "/keys/", "/keys/new/", "/usage/", "/billing/", "/admin/"]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_a_key_opens_no_page(client, api_key, path, header):
    value = f"Bearer {api_key.plaintext}" if header == "HTTP_AUTHORIZATION" else api_key.plaintext

    response = client.get(path, **{header: value})

    assert response.status_code == 302
    # To the sign-in page (the admin's own login page sends on to the same one).
    assert response["Location"].startswith(("/accounts/login/", "/admin/login/"))


def test_a_key_cannot_revoke_keys(client, api_key):
    response = client.post(
        f"/keys/{api_key.pk}/revoke/", HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}"
    )

    assert response.status_code in (302, 403)
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_the_same_key_still_works_on_the_api(client, api_key, bearer):
    assert client.get("/v1/me", **bearer).status_code == 200
