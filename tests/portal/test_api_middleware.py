"""The API skips the session, authentication and messages middleware (portal/api/middleware.py):
its answers are the same as through Django's own middleware, pages still get all three, and an
API answer never sets or deletes a cookie."""

import pytest
from django.conf import settings
from django.test import Client, override_settings

from portal.api import middleware as api_middleware

pytestmark = pytest.mark.django_db

# What each of ours stands in for: Django's own class.
DJANGO_ORIGINALS = {
    "portal.api.middleware.SessionMiddleware": (
        "django.contrib.sessions.middleware.SessionMiddleware"
    ),
    "portal.api.middleware.AuthenticationMiddleware": (
        "django.contrib.auth.middleware.AuthenticationMiddleware"
    ),
    "portal.api.middleware.MessageMiddleware": (
        "django.contrib.messages.middleware.MessageMiddleware"
    ),
}
# Headers that change from one call to the next (the counts of the rate limit).
MOVING_HEADERS = {"RateLimit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


def _answer(client: Client, method: str, path: str, **headers):
    response = getattr(client, method)(path, **headers)
    fixed = {name: value for name, value in response.headers.items() if name not in MOVING_HEADERS}
    moving = sorted(name for name in response.headers if name in MOVING_HEADERS)
    return response.status_code, response.content, fixed, moving, dict(response.cookies)


def _with_django_middleware() -> override_settings:
    return override_settings(
        MIDDLEWARE=[DJANGO_ORIGINALS.get(path, path) for path in settings.MIDDLEWARE]
    )


def test_the_settings_use_the_api_skipping_middleware():
    assert set(DJANGO_ORIGINALS) <= set(settings.MIDDLEWARE)


@pytest.mark.parametrize(
    ("method", "path", "with_key"),
    [
        ("get", "/v1/lookup?q=360", True),  # 200 with the rate-limit headers
        ("get", "/v1/lookup?q=oops", True),  # 400 problem
        ("get", "/v1/lookup?q=360", False),  # 401 problem
        ("post", "/v1/lookup", True),  # 405 problem
        ("get", "/v1/no-such-endpoint", True),  # 404 problem
        ("get", "/v1/", False),  # 404 problem
    ],
)
def test_an_api_answer_is_the_same_as_through_djangos_middleware(
    owner, bearer, method, path, with_key
):
    """A browser's cookies included: a signed-in session, the CSRF cookie and a flash message."""
    headers = bearer if with_key else {}

    def browser() -> Client:
        client = Client()
        client.force_login(owner)
        client.cookies["csrftoken"] = "a" * 32
        client.cookies["messages"] = "leftover"
        return client

    ours = _answer(browser(), method, path, **headers)
    with _with_django_middleware():
        django = _answer(browser(), method, path, **headers)

    assert ours == django
    status, _content, fixed, _moving, cookies = ours
    assert status != 500
    assert cookies == {}
    assert fixed["X-Frame-Options"] == "DENY"
    assert fixed["X-Content-Type-Options"] == "nosniff"


def test_an_api_answer_never_deletes_a_cookie(bearer):
    """Django's session middleware deletes a malformed session cookie in any answer; an API
    answer leaves the browser's cookies alone (this test failed with Django's middleware)."""
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = "x"

    response = client.get("/v1/lookup?q=360", **bearer)

    assert response.status_code == 200
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert "Vary" not in response.headers


def test_pages_still_get_sessions_users_and_messages(owner_client):
    """The dashboard needs the signed-in user from the session; a page with a malformed session
    cookie still gets it deleted, as Django does."""
    response = owner_client.get("/dashboard/")

    assert response.status_code == 200
    assert response.wsgi_request.user.is_authenticated
    assert hasattr(response.wsgi_request, "_messages")

    stranger = Client()
    stranger.cookies[settings.SESSION_COOKIE_NAME] = "x"
    answer = stranger.get("/")
    assert answer.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 0


def test_an_api_request_carries_no_session(bearer):
    request = Client().get("/v1/lookup?q=360", **bearer).wsgi_request

    assert api_middleware.is_api_request(request)
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
