"""The base of every metered API view: endpoints are declared as data.

A view says what it is called in the usage records (``endpoint_name``), what one successful
call costs (``cost``, in units), which tier scope it needs (``scope``; "" lets every tier in)
and which outcomes are billed (``billable_statuses``). DRF then runs, in its own order:
authentication (ApiKeyAuthentication) → permissions (TierScopePermission) → throttles
(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"], the metering limiter) → the handler →
``finalize_response``, which settles the request with metering (gives back the units of an
outcome that is not billable and adds the rate-limit headers). Because 401 and 403 are decided
before the throttle runs, refused requests never touch the counters.
"""

from collections.abc import Container

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.utils import json
from rest_framework.views import APIView

from metering.hotpath import settle
from portal.api_schema import MeteredAutoSchema
from portal.authentication import ApiKeyAuthentication, ApiKeyMissing
from portal.principal import ApiPrincipal
from portal.problems import PayloadTooLarge
from portal.selectors import tier_names_allowing


class ScopeNotAllowed(exceptions.PermissionDenied):
    problem_type = "scope-not-allowed"

    def __init__(self, *, scope: str, tier_name: str, allowed_tiers: list[str]):
        if allowed_tiers:
            detail = (
                f"The {tier_name} tier does not include this endpoint; "
                f"it is available on: {', '.join(allowed_tiers)}."
            )
        else:
            detail = f"The {tier_name} tier does not include this endpoint."
        super().__init__(detail)
        self.problem_extra = {"scope": scope, "allowed_tiers": allowed_tiers}


class AccountSuspended(exceptions.PermissionDenied):
    problem_type = "account-suspended"

    def __init__(self, *, reason: str):
        super().__init__("This account is suspended; API calls are refused until it is reinstated.")
        self.problem_extra = {"reason": reason}


class TierScopePermission(BasePermission):
    """A key of an active account whose tier includes the view's scope. Decided from the cached
    principal (no SQL), except that a refusal looks up which tiers would be allowed."""

    def has_permission(self, request, view) -> bool:
        principal = request.auth
        if not isinstance(principal, ApiPrincipal):
            raise ApiKeyMissing()
        if not principal.account_active:
            raise AccountSuspended(reason=principal.suspended_reason)
        scope = getattr(view, "scope", "")
        if scope and not principal.allows(scope):
            raise ScopeNotAllowed(
                scope=scope,
                tier_name=principal.tier_name,
                allowed_tiers=tier_names_allowing(scope),
            )
        return True


class BoundedJSONParser(JSONParser):
    """JSON bodies up to DATA_UPLOAD_MAX_MEMORY_SIZE bytes.

    DRF reads the body as a stream, which skips Django's size check (that one guards only
    ``request.body``); this parser enforces it, so an oversized body is a 413 and never read
    past the limit. Bodies nested too deep to parse are a 400 like any other bad JSON.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = parser_context.get("request")
        if limit is not None and request is not None:
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                raise PayloadTooLarge(limit)
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(limit)
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=json.strict_constant)
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None


class MeteredAPIView(APIView):
    """Subclasses declare ``endpoint_name``, ``cost``, ``scope`` and, for the docs and input
    validation, ``input_serializer_class`` / ``output_serializer_class``."""

    # The stable name usage is recorded under; renaming it splits an endpoint's history.
    endpoint_name: str = ""
    # Units one billable call spends; 0: free (still authenticated and passed to the limiter).
    cost: int = 1
    # The Tier.scopes entry needed; "": every tier may call it.
    scope: str = ""
    # Outcomes that are billed; any other status gives its units back.
    billable_statuses: Container[int] = range(200, 300)
    input_serializer_class = None
    output_serializer_class = None

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [TierScopePermission]
    parser_classes = [BoundedJSONParser]
    renderer_classes = [JSONRenderer]
    # No OPTIONS (DRF's metadata answer) or TRACE: the OpenAPI schema describes the API, and
    # fewer methods mean fewer outcomes to meter. They get a 405 problem.
    http_method_names = ["get", "post", "put", "patch", "delete", "head"]
    schema = MeteredAutoSchema()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        settle(request, response)
        return response
