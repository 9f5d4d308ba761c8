"""Developer-facing pages that are not about keys, usage or billing, and the health probe."""

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing.selectors import tier_list_public
from metering.selectors import metering_redis_safety
from portal.principal import AuthenticatedHttpRequest
from portal.services import account_ensure


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("portal:dashboard")
    return render(request, "portal/home.html", {"tiers": tier_list_public()})


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    account = account_ensure(owner=request.user)
    return render(request, "portal/dashboard.html", {"account": account})


def rate_limited(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """django-ratelimit's answer to too many login or signup attempts."""
    response = render(request, "portal/rate_limited.html", status=429)
    response["Retry-After"] = "60"
    return response


# What a check may say and still be served: the metering Redis answers, but its configuration
# risks billing data ("unsafe") or could not be read ("unknown"). Taking every node out of the
# load balancer for that would turn a risk into an outage.
_SERVING = {"ok", "unsafe", "unknown"}


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness in one: 200 when every configured backend answers, else 503.

    ``checks.metering_redis`` also says whether the limiter's Redis keeps billing data; when it
    does not, ``findings.metering_redis`` lists the short codes (``no-persistence``,
    ``eviction-policy``, ``slots-uncovered``...; ``metering.redis_safety``), and it stays 200.
    """
    checks: dict[str, str] = {}
    body: dict[str, object] = {"checks": checks}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure is reported, not raised
        checks["database"] = f"error: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        checks["redis"] = _redis_status(settings.REDIS_URL)
    # Asked through the limiter's own client: the server (or every cluster primary) the API
    # counts in, whether or not it is REDIS_URL's.
    safety = metering_redis_safety() if settings.METERING_REDIS_URL else None
    if safety is not None:
        checks["metering_redis"] = (
            f"error: {safety.error.partition(':')[0]}" if safety.error else safety.status
        )
        if safety.codes:
            body["findings"] = {"metering_redis": safety.codes}
    healthy = all(value in _SERVING for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", **body}, status=200 if healthy else 503
    )


def _redis_status(url: str) -> str:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.ping()
        return "ok"
    except redis.RedisError as exc:
        return f"error: {exc.__class__.__name__}"
