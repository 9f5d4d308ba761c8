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


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness in one: 200 when every configured backend answers, else 503."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure is reported, not raised
        checks["database"] = f"error: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        checks["redis"] = _redis_status(settings.REDIS_URL)
    if settings.METERING_REDIS_URL and settings.METERING_REDIS_URL != settings.REDIS_URL:
        # The usage counters may live in a Redis of their own (see METERING_REDIS_URL).
        checks["metering_redis"] = _redis_status(settings.METERING_REDIS_URL)
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503
    )


def _redis_status(url: str) -> str:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.ping()
        return "ok"
    except redis.RedisError as exc:
        return f"error: {exc.__class__.__name__}"
