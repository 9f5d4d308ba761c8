"""URLs of bench/api_auth.py only: the real ones plus the lookup endpoint stripped down, so the
bench compares the same view with and without authentication on one server. Never routed in
production (portal/urls.py does not include this module)."""

from django.urls import include, path

from portal.api import LookupView


class BareLookupView(LookupView):
    """The baseline: no authentication, no permission check, no limiter."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []


class AuthOnlyLookupView(LookupView):
    """Authentication and the scope check, without the limiter: what a key costs."""

    throttle_classes = []


urlpatterns = [
    path("bench/bare", BareLookupView.as_view()),
    path("bench/auth", AuthOnlyLookupView.as_view()),
    path("", include("portal.urls")),
]
