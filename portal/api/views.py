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

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.renderers import JSONRenderer
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from metering.hotpath import BILLABLE_STATUSES, settle
from portal.api.authentication import ApiKeyAuthentication
from portal.api.parsers import BoundedJSONParser
from portal.api.permissions import TierScopePermission
from portal.api.problems import problem_response
from portal.api.schema import MeteredAutoSchema


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
    billable_statuses: Container[int] = BILLABLE_STATUSES
    # The query parameters (GET) or the body the handler validates; None: it takes none.
    input_serializer_class: type[Serializer] | None = None
    # What a 2xx answer holds, for the docs; None: drf-spectacular's default.
    output_serializer_class: type[Serializer] | None = None

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
