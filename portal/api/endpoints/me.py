"""GET /v1/me: the calling key, its account, tier and limits, read from the cached principal."""

from rest_framework import serializers
from rest_framework.response import Response

from portal.api.views import MeteredAPIView


class MeKeySerializer(serializers.Serializer):
    prefix = serializers.CharField(source="key_prefix")
    expires_at = serializers.DateTimeField(source="key_expires_at", allow_null=True)


class MeTierSerializer(serializers.Serializer):
    slug = serializers.CharField(source="tier_slug")
    name = serializers.CharField(source="tier_name")
    scopes = serializers.SerializerMethodField()

    def get_scopes(self, principal) -> list[str]:
        return sorted(principal.scopes)


class MeLimitsSerializer(serializers.Serializer):
    rate_limit_per_minute = serializers.IntegerField(source="rate_limit")
    burst = serializers.IntegerField()
    quota_units = serializers.IntegerField(
        source="quota", help_text="Included units this period, operator credits added."
    )
    overage_policy = serializers.ChoiceField(choices=["block", "bill"])
    overage_cap_units = serializers.IntegerField(
        source="overage_cap", allow_null=True, help_text="null: no cap on billed overage."
    )
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()


class MeAccountSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="account_id")
    status = serializers.SerializerMethodField()

    def get_status(self, principal) -> str:
        return "active" if principal.account_active else "suspended"


class MeSerializer(serializers.Serializer):
    """Everything /v1/me says, read from the request's cached principal."""

    account = MeAccountSerializer(source="*")
    tier = MeTierSerializer(source="*")
    limits = MeLimitsSerializer(source="*")
    key = MeKeySerializer(source="*")


class MeView(MeteredAPIView):
    """The calling key, its account, tier and limits. Free: it costs no units, but it is
    authenticated and passes through the rate limiter like every call."""

    endpoint_name = "me"
    cost = 0
    scope = ""
    output_serializer_class = MeSerializer

    def get(self, request):
        return Response(MeSerializer(request.auth).data)
