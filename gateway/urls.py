"""The gateway's /v1/ routes. config/urls.py places them after the built-in endpoints
(portal/api/urls.py ``routes``) and before the API's catch-all, in the "api" namespace."""

from django.urls import path, re_path

from gateway.edge import KeySettleView, KeyVerifyView
from gateway.views import proxy

urlpatterns = [
    # For upstreams that keep their own edge (gateway/edge.py): before the proxy, which would
    # take any /v1/ path.
    path("v1/keys/verify", KeyVerifyView.as_view(), name="keys-verify"),
    path("v1/keys/settle", KeySettleView.as_view(), name="keys-settle"),
    # Last of the gateway's routes: every other /v1/ path is looked up in the route table of
    # live endpoints; a path none answers gets the API's 404 problem.
    re_path(r"^v1/(?P<path>.*)$", proxy, name="gateway-proxy"),
]
