"""Input and output serializers of the API's portal endpoints (demo product and /v1/me)."""

from rest_framework import serializers

from portal.demo_product import LOOKUP_MAX

# Bounds keep every result finite: a sum of 10,000 values of at most 10**12 stays far inside a
# float, so nothing in the answer can be Infinity (which JSON cannot carry).
COMPUTE_MAX_VALUES = 10_000
COMPUTE_VALUE_BOUND = 1e12


class JsonNumberField(serializers.FloatField):
    """A JSON number and nothing else: DRF's FloatField also takes true (as 1.0) and "3"."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class LookupQuerySerializer(serializers.Serializer):
    q = serializers.IntegerField(
        min_value=1, max_value=LOOKUP_MAX, help_text=f"A whole number from 1 to {LOOKUP_MAX}."
    )


class LookupResultSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    is_prime = serializers.BooleanField()
    prime_factors = serializers.ListField(
        child=serializers.IntegerField(), help_text="With multiplicity, smallest first."
    )
    divisor_count = serializers.IntegerField()
    parity = serializers.ChoiceField(choices=["even", "odd"])
    is_perfect_square = serializers.BooleanField()
    binary = serializers.CharField()
    hexadecimal = serializers.CharField()
    roman = serializers.CharField(allow_null=True, help_text="null above 3999.")


class ComputeInputSerializer(serializers.Serializer):
    values = serializers.ListField(
        child=JsonNumberField(min_value=-COMPUTE_VALUE_BOUND, max_value=COMPUTE_VALUE_BOUND),
        min_length=1,
        max_length=COMPUTE_MAX_VALUES,
        help_text=f"1 to {COMPUTE_MAX_VALUES} numbers, each within ±10^12.",
    )
    percentiles = serializers.ListField(
        child=JsonNumberField(min_value=0, max_value=100),
        max_length=20,
        required=False,
        default=list,
        help_text="Percentile ranks (0-100) to report, e.g. [50, 90, 99].",
    )


class ComputeResultSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sum = serializers.FloatField()
    mean = serializers.FloatField()
    median = serializers.FloatField()
    min = serializers.FloatField()
    max = serializers.FloatField()
    stdev = serializers.FloatField(allow_null=True, help_text="Sample deviation; null for 1 value.")
    percentiles = serializers.DictField(
        child=serializers.FloatField(), help_text="Rank → value, linear interpolation."
    )


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
