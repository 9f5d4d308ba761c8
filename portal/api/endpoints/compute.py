"""POST /v1/compute: statistics of a list of numbers (the demo product's dearer call)."""

from rest_framework import serializers
from rest_framework.response import Response

from portal import demo_product
from portal.api.views import MeteredAPIView

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


class ComputeView(MeteredAPIView):
    """Descriptive statistics of up to 10,000 numbers: count, sum, mean, median, min, max,
    sample standard deviation and any percentiles asked for."""

    endpoint_name = "compute"
    cost = 5
    scope = "compute"
    input_serializer_class = ComputeInputSerializer
    output_serializer_class = ComputeResultSerializer

    def post(self, request):
        body = ComputeInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = demo_product.describe(
            body.validated_data["values"], body.validated_data["percentiles"]
        )
        return Response(ComputeResultSerializer(result).data)
