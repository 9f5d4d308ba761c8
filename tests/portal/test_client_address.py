"""The client address behind our proxies (TRUSTED_PROXY_COUNT), which every per-address limit
counts under: django-ratelimit's on login and signup, allauth's on password reset.

X-Forwarded-For as proxies write it: nginx's $proxy_add_x_forwarded_for appends the address it
received the request from (https://nginx.org/en/docs/http/ngx_http_proxy_module.html), as an
AWS ALB does in its default "append" mode
(https://docs.aws.amazon.com/elasticloadbalancing/latest/application/x-forwarded-headers.html).
"""

import logging

import pytest
from allauth.account.adapter import get_adapter
from django.http import HttpRequest
from django.test import RequestFactory

from portal.client_address import UNKNOWN_CLIENT, client_address

PROXY = "10.0.0.2"
CLIENT = "198.51.100.7"


def _request(forwarded_for: str | None = None, remote_addr: str = PROXY) -> HttpRequest:
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=remote_addr)
    if forwarded_for is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return request


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXY_COUNT = 0

    assert client_address(_request("203.0.113.1", remote_addr=CLIENT)) == CLIENT


@pytest.mark.parametrize(
    "proxies, forwarded_for",
    [
        (1, CLIENT),
        (1, f"203.0.113.1, {CLIENT}"),
        (2, f"{CLIENT}, 10.0.0.1"),
        (2, f"203.0.113.1,{CLIENT},10.0.0.1"),
    ],
)
def test_the_client_is_the_entry_our_outermost_proxy_appended(settings, proxies, forwarded_for):
    settings.TRUSTED_PROXY_COUNT = proxies

    assert client_address(_request(forwarded_for)) == CLIENT


@pytest.mark.parametrize(
    "forged", ["203.0.113.1", "203.0.113.1, 203.0.113.2", "", "unknown", "::1", "a" * 500]
)
def test_forged_entries_left_of_ours_change_nothing(settings, forged):
    settings.TRUSTED_PROXY_COUNT = 1

    assert client_address(_request(f"{forged}, {CLIENT}")) == CLIENT


@pytest.mark.parametrize(
    "proxies, forwarded_for",
    [
        # Fewer entries than our proxies append: it did not come through them all.
        (2, CLIENT),
        (3, f"203.0.113.1, {CLIENT}"),
        # Not an address where our proxy writes one.
        (1, "unknown"),
        (1, f"{CLIENT}, "),
        # Nothing forwarded: a request straight to the app (a health check).
        (1, ""),
        (1, None),
    ],
)
def test_a_header_our_proxies_did_not_write_counts_under_the_nearest_hop(
    settings, proxies, forwarded_for
):
    settings.TRUSTED_PROXY_COUNT = proxies

    assert client_address(_request(forwarded_for)) == PROXY


@pytest.mark.parametrize(
    "entry, address",
    [
        ("198.51.100.7:51234", "198.51.100.7"),
        ("[2001:DB8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_addresses_are_read_as_proxies_write_them(settings, entry, address):
    settings.TRUSTED_PROXY_COUNT = 1

    assert client_address(_request(entry)) == address


def test_a_missing_remote_address_is_one_shared_bucket_and_a_warning(settings, caplog):
    settings.TRUSTED_PROXY_COUNT = 0

    with caplog.at_level(logging.WARNING, logger="portal.client_address"):
        assert client_address(_request(remote_addr="")) == UNKNOWN_CLIENT
    assert "TRUSTED_PROXY_COUNT" in caplog.text


def test_allauth_limits_count_under_the_same_address(settings):
    settings.TRUSTED_PROXY_COUNT = 1

    assert get_adapter().get_client_ip(_request(f"203.0.113.1, {CLIENT}")) == CLIENT


def _login(client, n: int, forwarded_for: str, remote_addr: str = PROXY) -> int:
    # A new email each time, so only the per-address limit counts.
    return client.post(
        "/accounts/login/",
        {"login": f"nobody{n}@example.com", "password": "wrong"},
        REMOTE_ADDR=remote_addr,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    ).status_code


@pytest.mark.django_db
def test_without_trusted_proxies_a_forged_header_does_not_escape_the_login_limit(client, settings):
    settings.TRUSTED_PROXY_COUNT = 0

    statuses = [_login(client, n, f"203.0.113.{n}", remote_addr=CLIENT) for n in range(12)]

    assert statuses[:10] == [200] * 10
    assert statuses[10:] == [429, 429]


@pytest.mark.django_db
def test_two_clients_behind_one_proxy_are_limited_separately(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    first, second = "198.51.100.1", "198.51.100.2"

    assert [_login(client, n, first) for n in range(10)] == [200] * 10
    assert [_login(client, n, second) for n in range(10, 20)] == [200] * 10
    assert _login(client, 20, first) == 429
    # A forged entry left of the one our proxy appended does not get the first client out.
    assert _login(client, 21, f"203.0.113.9, {first}") == 429
    assert _login(client, 22, f"{second}, {first}") == 429


@pytest.mark.django_db
def test_two_clients_behind_one_proxy_have_their_own_password_reset_limits(client, settings):
    # allauth's own limit: reset_password "20/m/ip" (allauth/account/app_settings.py).
    settings.TRUSTED_PROXY_COUNT = 1

    def reset(n: int, forwarded_for: str) -> int:
        return client.post(
            "/accounts/password/reset/",
            {"email": f"nobody{n}@example.com"},
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR=forwarded_for,
        ).status_code

    assert [reset(n, "198.51.100.1") for n in range(20)] == [302] * 20
    assert reset(20, "203.0.113.9, 198.51.100.1") == 429
    assert reset(21, "198.51.100.2") == 302


@pytest.mark.django_db
def test_a_short_header_on_password_reset_is_not_a_server_error(client, settings):
    # allauth's own reader raises ImproperlyConfigured here (httpkit.get_client_ip_from_xff).
    settings.TRUSTED_PROXY_COUNT = 2

    response = client.post(
        "/accounts/password/reset/",
        {"email": "nobody@example.com"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=CLIENT,
    )

    assert response.status_code == 302


def test_behind_a_proxy_on_a_unix_socket_the_header_is_enough(settings, caplog):
    settings.TRUSTED_PROXY_COUNT = 1

    with caplog.at_level(logging.WARNING, logger="portal.client_address"):
        assert client_address(_request(CLIENT, remote_addr="")) == CLIENT
    assert not caplog.records
