"""GET /v1/lookup: facts about a whole number (the demo product's cheapest call)."""

from rest_framework import serializers
from rest_framework.response import Response

from portal import demo_product
from portal.api.views import MeteredAPIView
from portal.demo_product import LOOKUP_MAX


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


class LookupView(MeteredAPIView):
    """Facts about a whole number: primality, prime factors, divisors, binary, hex, Roman."""

    endpoint_name = "lookup"
    cost = 1
    scope = "basic"
    input_serializer_class = LookupQuerySerializer
    output_serializer_class = LookupResultSerializer

    def get(self, request):
        query = LookupQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        facts = demo_product.number_facts(query.validated_data["q"])
        return Response(LookupResultSerializer(facts).data)
