"""A URLconf for the metering tests: metered views of known cost and outcome, in front of the
project's own URLs. The real /v1/ API routes are tested by its own modules; these views let
the limiter be tested against outcomes the demo API does not have (a 400, a crash)."""

from django.urls import include, path
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from portal.api.endpoints.usage import UsageView
from portal.api.views import MeteredAPIView


class LookupView(MeteredAPIView):
    endpoint_name = "lookup"
    cost = 1
    scope = "basic"

    def get(self, request):
        return Response({"ok": True})


class ComputeView(MeteredAPIView):
    endpoint_name = "compute"
    cost = 5
    scope = "basic"

    def get(self, request):
        return Response({"ok": True})


class RejectsInputView(MeteredAPIView):
    """A 400 when ``?valid`` is missing, else 200: the same endpoint, billed or given back."""

    endpoint_name = "validate"
    cost = 2
    scope = "basic"

    def get(self, request):
        if "valid" not in request.query_params:
            raise ValidationError({"valid": ["This parameter is required."]})
        return Response({"ok": True})


class MissingView(MeteredAPIView):
    endpoint_name = "missing"
    cost = 1
    scope = "basic"

    def get(self, request):
        raise NotFound("No such thing.")


class CrashView(MeteredAPIView):
    endpoint_name = "crash"
    cost = 3
    scope = "basic"

    def get(self, request):
        raise RuntimeError("the view broke")


urlpatterns = [
    path("v1/test/lookup", LookupView.as_view()),
    path("v1/test/compute", ComputeView.as_view()),
    path("v1/test/validate", RejectsInputView.as_view()),
    path("v1/test/missing", MissingView.as_view()),
    path("v1/test/crash", CrashView.as_view()),
    path("v1/usage", UsageView.as_view()),
    path("", include("config.urls")),
]
