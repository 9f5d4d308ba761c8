"""URLs of bench/api_auth.py and bench/hotpath.py only, never routed in production: the shipped
API plus the lookup endpoint stripped down (the baseline), with a Redis PING, and throttled by
DRF's own SimpleRateThrottle instead of the metering limiter (the comparison for exactness).

The ``v1/bench/`` copies sit under the API's prefix, so they take the middleware an API request
takes (``portal/api/middleware.py``); the ``bench/`` ones take the whole chain a page takes."""

from django.urls import include, path
from rest_framework.throttling import SimpleRateThrottle

from metering.limiter import get_limiter
from metering.limiter.redis import RedisLimiter
from portal.api.endpoints.lookup import LookupView


class BareLookupView(LookupView):
    """The baseline: the same view without authentication, permission, limiter or metering."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []


class AuthOnlyLookupView(LookupView):
    """Authentication and the scope check, without the limiter: what the key alone costs."""

    throttle_classes = []


class AuthPingLookupView(AuthOnlyLookupView):
    """Authentication plus one Redis PING on the limiter's connection pool: the cost of the one
    round trip the limiter needs, without the limiter's own work."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        limiter = get_limiter()
        # The hot-path bench always sets METERING_REDIS_URL; the in-process limiter has no PING.
        assert isinstance(limiter, RedisLimiter)
        limiter.client.ping()


class KeyRateThrottle(SimpleRateThrottle):
    """DRF's throttle as its documentation sets it up: a request history per key in the Django
    cache (Redis here), read, trimmed, checked and written back — four steps, not atomic."""

    scope = "bench"
    rate = "100/hour"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.auth.key_id}


class DrfThrottledLookupView(LookupView):
    throttle_classes = [KeyRateThrottle]


urlpatterns = [
    path("bench/full", LookupView.as_view()),
    path("bench/bare", BareLookupView.as_view()),
    path("bench/nocsp/bare", BareLookupView.as_view()),
    path("bench/auth", AuthOnlyLookupView.as_view()),
    path("bench/ping", AuthPingLookupView.as_view()),
    path("bench/drf", DrfThrottledLookupView.as_view()),
    # Before config.urls, whose /v1/ catch-all would answer these with a 404.
    path("v1/bench/bare", BareLookupView.as_view()),
    path("v1/bench/auth", AuthOnlyLookupView.as_view()),
    path("v1/bench/ping", AuthPingLookupView.as_view()),
    path("", include("config.urls")),
]
