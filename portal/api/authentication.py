"""The API's authentication: an API key in ``Authorization: Bearer`` or ``X-API-Key``.

Extends DRF at its hook (``BaseAuthentication.authenticate``). ``request.auth`` becomes the
key's ``ApiPrincipal``; ``request.user`` an ``ApiKeyUser`` that carries no database row, so
nothing on a warm request runs SQL.
"""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

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
        """The key from ``Authorization: Bearer <key>``, else ``X-API-Key``; None when neither
        is sent. Any other Authorization scheme is refused as malformed rather than ignored."""
        header = get_authorization_header(request)
        if header:
            parts = header.split()
            if len(parts) != 2 or parts[0].lower() != b"bearer":
                raise KeyRefused(KeyRejected("malformed"))
            try:
                return parts[1].decode("ascii")
            except UnicodeDecodeError:
                raise KeyRefused(KeyRejected("malformed")) from None
        api_key = request.META.get("HTTP_X_API_KEY", "").strip()
        return api_key or None
