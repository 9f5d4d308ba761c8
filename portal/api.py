"""The API under /v1/: the demo product endpoints and /v1/me. One view per operation."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response

from portal import demo_product
from portal.api_base import MeteredAPIView
from portal.problems import problem_response
from portal.serializers import (
    ComputeInputSerializer,
    ComputeResultSerializer,
    LookupQuerySerializer,
    LookupResultSerializer,
    MeSerializer,
)


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


class MeView(MeteredAPIView):
    """The calling key, its account, tier and limits. Free: it costs no units, but it is
    authenticated and passes through the rate limiter like every call."""

    endpoint_name = "me"
    cost = 0
    scope = ""
    output_serializer_class = MeSerializer

    def get(self, request):
        return Response(MeSerializer(request.auth).data)


@csrf_exempt
def unknown_endpoint(request: HttpRequest, path: str = "") -> JsonResponse:
    """Anything under /v1/ that no endpoint matches: a 404 problem, whatever the method (and
    without reading the body or asking for a key: there is nothing here to protect)."""
    return problem_response(
        request,
        status_code=404,
        detail=f"There is no endpoint at {request.path}; the API's endpoints are listed at "
        "/api/docs/.",
    )
