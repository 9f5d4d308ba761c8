"""How the metered API describes itself in OpenAPI (drf-spectacular).

Every ``MeteredAPIView`` documents, from the data it declares: its cost in units, the scope it
needs and the public tiers that include that scope (read from the Tier table when the schema
is generated, so the docs follow what an operator edits), its input and output serializers,
and the problem responses it can give. The key scheme is documented both ways a key may be
sent.
"""

from django.db import DatabaseError
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from portal.api.problems import PROBLEM_CONTENT_TYPE
from portal.keys.format import key_start
from portal.selectors import tier_names_allowing

BODY_METHODS = {"POST", "PUT", "PATCH"}


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem document (application/problem+json)."""

    type = serializers.URLField(help_text="Identifies the problem; opens a page explaining it.")
    title = serializers.CharField(help_text="Short summary, the same for every problem of a type.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="What went wrong with this request.")
    instance = serializers.CharField(required=False, help_text="The path that was requested.")
    # RFC 9457's "errors" member shadows Serializer.errors in the class body only: DRF's
    # serializer metaclass moves declared fields out of the class, so the property stays.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.DictField(),
        required=False,
        help_text="400: each invalid field as {field, detail, code}; field is null for the "
        "request as a whole.",
    )
    reason = serializers.CharField(
        required=False,
        help_text="401: missing, malformed, unknown, expired or revoked. "
        "403 account-suspended: what the operator wrote.",
    )
    allowed_tiers = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="403 scope-not-allowed: the public tiers that include this endpoint.",
    )
    limit = serializers.IntegerField(required=False, help_text="413: the most bytes allowed.")
    upgrade_url = serializers.URLField(
        required=False,
        help_text="403 scope-not-allowed, 403 cost-above-burst, 429 quota-exceeded: the pricing "
        "page, where a tier that allows the call can be chosen.",
    )


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.ApiKeyAuthentication"
    name = ["ApiKeyBearer", "ApiKeyHeader"]

    def get_security_requirement(self, auto_schema):
        # Either header works (OR), not both together (AND, drf-spectacular's default for lists).
        return [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]

    def get_security_definition(self, auto_schema):
        # The start this install's keys have (mdk_test_ unless Stripe is in live mode).
        start = key_start()
        how = (
            f"An API key from the portal's API keys page, e.g. {start}ab12cd34_<32 characters>. "
            "Keys are shown once when created; revoked keys stop working within seconds."
        )
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": f"{start}<8 chars>_<32 chars>",
                "description": f"Authorization: Bearer <key>. {how}",
            },
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": how},
        ]


def allowed_tier_names(scope: str) -> list[str] | None:
    """Public tiers that include ``scope``; None when the tier table cannot be read (schema
    generated without a database, e.g. ``manage.py spectacular`` in a build step)."""
    try:
        return tier_names_allowing(scope)
    except DatabaseError:
        return None


class MeteredAutoSchema(AutoSchema):
    """Reads the view's declared data: ``input_serializer_class`` (query parameters for GET, the
    body otherwise), ``output_serializer_class``, ``cost``, ``scope``."""

    def _view_attr(self, name: str, default=None):
        return getattr(self.view, name, default)

    def get_override_parameters(self):
        serializer = self._view_attr("input_serializer_class")
        if serializer is not None and self.method not in BODY_METHODS:
            return [serializer]
        return super().get_override_parameters()

    def get_request_serializer(self):
        if self.method in BODY_METHODS:
            return self._view_attr("input_serializer_class")
        return None

    def get_response_serializers(self):
        return self._view_attr("output_serializer_class") or super().get_response_serializers()

    # drf-spectacular's AutoSchema drops DRF's (path, method) parameters here and ignores the
    # same override error in its own code; this matches drf-spectacular's signature.
    def get_description(self) -> str:  # type: ignore[override]
        base = super().get_description() or ""
        return f"{base}\n\n{self._pricing_sentence()}".strip()

    def get_extensions(self):
        scope = self._view_attr("scope", "")
        extensions = {"x-cost-units": self._view_attr("cost", 0), "x-scope": scope or None}
        tiers = allowed_tier_names(scope) if scope else None
        if tiers is not None:
            extensions["x-allowed-tiers"] = tiers
        return extensions

    def _pricing_sentence(self) -> str:
        cost = self._view_attr("cost", 0)
        scope = self._view_attr("scope", "")
        if cost:
            unit = "unit" if cost == 1 else "units"
            price = f"**Cost:** {cost} {unit} per successful (2xx) call; errors are not billed."
        else:
            price = "**Cost:** free (0 units), never billed; it still needs a key."
        if not scope:
            return f"{price} **Tiers:** every tier may call it."
        tiers = allowed_tier_names(scope)
        if tiers is None:
            who = f"tiers whose scopes include `{scope}`"
        elif tiers:
            who = ", ".join(tiers)
        else:
            who = f"no public tier includes `{scope}` at the moment"
        return f"{price} **Scope:** `{scope}`. **Tiers:** {who}."

    def _get_response_bodies(self, direction="response"):
        # drf-spectacular has no public hook to add responses next to the ones an
        # @extend_schema may declare, so the problem answers are merged in here.
        responses = super()._get_response_bodies(direction)
        problems = {
            "401": "No key, or a malformed, unknown, expired or revoked key.",
            "403": "The tier does not include this endpoint's scope, or the account is suspended.",
            "429": "Over the rate limit or the quota; wait for Retry-After.",
            "503": "The metering backend did not answer; nothing was billed.",
        }
        if self._view_attr("input_serializer_class") is not None:
            problems["400"] = "Invalid parameters or body; errors lists each field."
        if self.method in BODY_METHODS:
            problems["413"] = "The body is larger than the API accepts."
            problems["415"] = "The body is not JSON."
        for code, description in sorted(problems.items()):
            response = OpenApiResponse(ProblemSerializer, description=description)
            responses.setdefault(
                code, self._get_response_for_code(response, code, [PROBLEM_CONTENT_TYPE], direction)
            )
        return responses
