"""Django's session, authentication and messages middleware, skipped for the API.

Django runs every ``MIDDLEWARE`` entry on every request. A request under ``/v1/`` is
authenticated by its API key, inside DRF (``portal.api.authentication``), and answered with JSON;
nothing on its way reads a session, the signed-in user or a flash message. Yet the three cost it
about 38 µs of CPU per call (measured one at a time on a /v1/ 200, 2026-12-01: messages 24 µs,
its storage builds a cookie signer; authentication 9 µs; sessions 5 µs; docs/performance.md,
"The hot path", has the rest of the call's budget). Each subclass
below passes an API request straight to the next layer and runs Django's own code for every
other request. They stay subclasses, so Django's checks still find them (``admin.E408``-``E410``
look for the classes or a subclass in ``MIDDLEWARE``).

What changes for an API answer is one edge case. With Django's middleware, a /v1/ request
carrying a malformed ``sessionid`` cookie (a browser's leftover) got it deleted in its answer
(``Set-Cookie`` with an expiry in the past, ``Vary: Cookie``); an API answer now never sets or
deletes a cookie. ``tests/portal/test_api_middleware.py`` sends the same requests through both
chains and compares status, body and headers.

Left in place for the API, by measurement or on purpose:

- ``allauth.account.middleware.AccountMiddleware`` (~3 µs: a namespace and a context variable):
  allauth refuses to start unless that exact dotted path is in ``MIDDLEWARE``
  (``allauth/account/apps.py``), so it cannot be swapped for a subclass here;
- ``django_ratelimit``'s ``RatelimitMiddleware`` (0.2 µs): its ``__call__`` only passes the
  request on; its ``process_exception`` answers the ``Ratelimited`` exception of the login and
  signup views, which no API view raises (DRF's handler answers every API error itself);
- ``SecurityMiddleware``, ``CommonMiddleware``, ``CsrfViewMiddleware``, ``XFrameOptionsMiddleware``:
  the headers and checks every answer gets (nosniff, Referrer-Policy, COOP, HSTS and the HTTPS
  redirect in production, X-Frame-Options, Content-Length, disallowed user agents). Every API
  view is CSRF-exempt, so the CSRF middleware only reads the cookie there.
"""

from collections.abc import Awaitable

from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

# The API's routes (portal/api/urls.py); the CSP middleware leaves the same prefix out
# (settings.CONTENT_SECURITY_POLICY["EXCLUDE_URL_PREFIXES"]).
API_PREFIX = "/v1/"


def is_api_request(request: HttpRequest) -> bool:
    # path_info, as the URL resolver matches it (without a SCRIPT_NAME prefix).
    return request.path_info.startswith(API_PREFIX)


class _SkippedForApi(MiddlewareMixin):
    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if is_api_request(request):
            # In an async stack get_response is a coroutine function: its awaitable is
            # returned as Django's own __acall__ would.
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_SkippedForApi, sessions_middleware.SessionMiddleware):
    """``request.session``, on every request but the API's."""


class AuthenticationMiddleware(_SkippedForApi, auth_middleware.AuthenticationMiddleware):
    """``request.user`` from the session, on every request but the API's (DRF sets it there
    from the key: ``ApiKeyUser``)."""


class MessageMiddleware(_SkippedForApi, messages_middleware.MessageMiddleware):
    """Flash messages, on every request but the API's."""
