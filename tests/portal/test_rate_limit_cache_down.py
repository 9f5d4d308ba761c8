"""With the cache's Redis down, login, signup and password reset still work: their limits fail
open and say so in a WARNING (portal/rate_limits.py FailOpenRedisCache).

No Redis is needed: the cache points at a closed port, which refuses every connection, as a
stopped Redis does. Both limiters are exercised: django-ratelimit (login, signup) and allauth's
own (password reset, re-sending a confirmation; allauth/core/internal/ratelimit.py).
"""

import logging

import pytest
import redis
from django.core import mail
from django.core.cache import cache
from django.test import override_settings

from tests.factories import PASSWORD

REDIS_DOWN = {
    "default": {
        "BACKEND": "portal.rate_limits.FailOpenRedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "KEY_PREFIX": "md",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.05, "SOCKET_TIMEOUT": 0.5},
    }
}


@pytest.fixture
def redis_down(caplog):
    """The default cache on a Redis that refuses connections; the WARNINGs it logs captured.

    A fixture of the test (not the settings fixture), so the cache is back before conftest's
    teardown clears it."""
    caplog.set_level(logging.WARNING, logger="portal.rate_limits")
    with override_settings(CACHES=REDIS_DOWN):
        yield caplog


def _warned(caplog) -> bool:
    return any(
        record.name == "portal.rate_limits" and record.levelno == logging.WARNING
        for record in caplog.records
    )


@pytest.mark.django_db
def test_login_lets_the_developer_in(client, owner, redis_down):
    response = client.post("/accounts/login/", {"login": owner.email, "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert _warned(redis_down)


@pytest.mark.django_db
def test_a_wrong_password_is_still_refused_with_the_form(client, owner, redis_down):
    response = client.post("/accounts/login/", {"login": owner.email, "password": "wrong"})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert _warned(redis_down)


@pytest.mark.django_db
def test_an_unconfirmed_developer_logging_in_is_sent_the_confirmation_again(
    client, unverified_user, redis_down
):
    response = client.post(
        "/accounts/login/", {"login": unverified_user.email, "password": PASSWORD}
    )

    assert response.status_code == 302
    assert [message.to for message in mail.outbox] == [[unverified_user.email]]


@pytest.mark.django_db
def test_signup_creates_the_account_and_sends_the_confirmation(client, redis_down):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "new@example.com",
            "password1": "a-Long-passw0rd!",
            "password2": "a-Long-passw0rd!",
        },
    )

    assert response.status_code == 302
    assert [message.to for message in mail.outbox] == [["new@example.com"]]
    assert _warned(redis_down)


@pytest.mark.django_db
def test_password_reset_sends_the_email(client, owner, redis_down):
    response = client.post("/accounts/password/reset/", {"email": owner.email})

    assert response.status_code == 302
    assert [message.to for message in mail.outbox] == [[owner.email]]
    assert _warned(redis_down)


def test_other_cache_keys_still_raise(redis_down):
    # allauth.mfa marks a used TOTP code with cache.add to refuse its replay: an outage must not
    # make the code look unused.
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.add("allauth.mfa.totp.used?user=1&code=123456", "y")
    assert not _warned(redis_down)
