"""The API's routes (namespace "api"). Paths carry no trailing slash, as clients write them."""

from django.urls import path, re_path

from metering.api import UsageView
from portal import api

app_name = "api"

urlpatterns = [
    path("v1/lookup", api.LookupView.as_view(), name="lookup"),
    path("v1/compute", api.ComputeView.as_view(), name="compute"),
    path("v1/me", api.MeView.as_view(), name="me"),
    # Written by metering (its selector and serializers); routed here so the catch-all stays last.
    path("v1/usage", UsageView.as_view(), name="usage"),
    # Last: every other path under /v1/ is a JSON 404, never the HTML page or a slash redirect.
    re_path(r"^v1/(?P<path>.*)$", api.unknown_endpoint, name="unknown"),
]
