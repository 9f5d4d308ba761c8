"""The API's routes (namespace "api"). Paths carry no trailing slash, as clients write them."""

from django.urls import path, re_path

from portal.api.endpoints.compute import ComputeView
from portal.api.endpoints.lookup import LookupView
from portal.api.endpoints.me import MeView
from portal.api.endpoints.usage import UsageView
from portal.api.views import unknown_endpoint

app_name = "api"

# The built-in endpoints. config/urls.py puts the gateway's routes (gateway/urls.py: the
# operator's own endpoints, sold through the proxy) after these and before the catch-all.
routes = [
    path("v1/lookup", LookupView.as_view(), name="lookup"),
    path("v1/compute", ComputeView.as_view(), name="compute"),
    path("v1/me", MeView.as_view(), name="me"),
    path("v1/usage", UsageView.as_view(), name="usage"),
]
# Last: every other path under /v1/ is a JSON 404, never the HTML page or a slash redirect.
fallback = [re_path(r"^v1/(?P<path>.*)$", unknown_endpoint, name="unknown")]

urlpatterns = [*routes, *fallback]
