"""The API's authentication: an API key in ``Authorization: Bearer`` or ``X-API-Key``.

Extends DRF at its hook (``BaseAuthentication.authenticate``). ``request.auth`` becomes the
key's ``ApiPrincipal``; ``request.user`` an ``ApiKeyUser`` that carries no database row, so
nothing on a warm request runs SQL.
"""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from portal.keys.cache import KeyCache, KeyRejected, key_cache
from portal.keys.last_used import last_used_buffer
from portal.principal import ApiPrincipal

REALM_HEADER = 'Bearer realm="api"'


class ApiKeyUser:
    """Who ``request.user`` is on the API: the key's account, without loading the owner row.

    API code reads ``request.auth`` (the principal); this exists so code that asks
    ``request.user.is_authenticated`` gets a true answer without a query.
    """

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    # No user row is loaded; None keeps code that would key anything on a user id honest.
    pk = None
    id = None

    def __init__(self, principal: ApiPrincipal):
        self.principal = principal
        self.account_id = principal.account_id
        self.is_active = principal.account_active

    def __str__(self) -> str:
        return f"API key {self.principal.key_prefix}"

    def get_username(self) -> str:
        return self.principal.key_prefix

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False


class KeyRefused(exceptions.AuthenticationFailed):
    problem_type = "unauthenticated"

    def __init__(self, rejected: KeyRejected):
        super().__init__(rejected.detail)
        self.problem_extra = {"reason": rejected.reason}


class ApiKeyMissing(exceptions.NotAuthenticated):
    problem_type = "unauthenticated"
    default_detail = KeyRejected.DETAILS["missing"]
    problem_extra = {"reason": "missing"}


class KeyHeadersRefused(exceptions.AuthenticationFailed):
    """The key headers themselves are wrong (an empty one, two different keys): a 401 with
    reason ``malformed`` and a detail that says which header to fix."""

    problem_type = "unauthenticated"
    problem_extra = {"reason": "malformed"}

    EMPTY_AUTHORIZATION = (
        "The Authorization header is empty; send 'Authorization: Bearer <key>' or leave the "
        "header out and use 'X-API-Key'."
    )
    EMPTY_API_KEY = "The X-API-Key header is empty; send 'X-API-Key: <key>' or leave it out."
    TWO_KEYS = (
        "Authorization and X-API-Key hold different keys; send the key in one header "
        "(or the same key in both)."
    )


class ApiKeyAuthentication(BaseAuthentication):
    # The cache this class resolves through; tests swap in one with a controllable clock.
    cache: KeyCache = key_cache

    def authenticate(self, request) -> tuple[ApiKeyUser, ApiPrincipal] | None:
        raw = self._presented_key(request)
        if raw is None:
            # No credentials: DRF asks the permission class, which answers 401 (ApiKeyMissing).
            return None
        try:
            principal = self.cache.resolve(raw)
        except KeyRejected as rejected:
            raise KeyRefused(rejected) from None
        last_used_buffer.record(principal.key_id)
        return ApiKeyUser(principal), principal

    def authenticate_header(self, request) -> str:
        return REALM_HEADER

    @staticmethod
    def _presented_key(request) -> str | None:
        return presented_key(
            request.META.get("HTTP_AUTHORIZATION"), request.META.get("HTTP_X_API_KEY")
        )


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key`` (the two headers' values,
    None when not sent); None when neither header is sent.

    A header that is sent must hold a key: an empty one, or another Authorization scheme,
    is refused as malformed rather than skipped for the other header. Both headers may be
    sent only with the same key: with two different keys no one can tell which the client
    meant, so neither wins. No SQL: this runs on every call.
    """
    bearer = None if authorization is None else _bearer_key(authorization)
    if api_key is not None:
        api_key = api_key.strip()
        if not api_key:
            raise KeyHeadersRefused(KeyHeadersRefused.EMPTY_API_KEY)
    if bearer is not None and api_key is not None and bearer != api_key:
        raise KeyHeadersRefused(KeyHeadersRefused.TWO_KEYS)
    return bearer or api_key


def _bearer_key(authorization: str) -> str:
    """The key of a present Authorization header, which must read ``Bearer <key>`` (the scheme
    in any case, RFC 9110 §11.1); anything else is malformed."""
    parts = authorization.split()
    if not parts:
        raise KeyHeadersRefused(KeyHeadersRefused.EMPTY_AUTHORIZATION)
    if len(parts) != 2 or parts[0].lower() != "bearer" or not parts[1].isascii():
        raise KeyRefused(KeyRejected("malformed"))
    return parts[1]
