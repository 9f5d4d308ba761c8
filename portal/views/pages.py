"""Developer-facing pages that are not about keys, usage or billing, the health checks
(``/healthz``, JSON, for load balancers and monitoring; ``/status/``, the same in words), and
the 403 page."""

from dataclasses import dataclass

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing.selectors import account_tier_set_by_operator, tier_list_public
from metering.selectors import metering_redis_safety
from portal.organisation_access import RoleRefused, organisation_for
from portal.permissions import Action, roles_allowing
from portal.principal import AuthenticatedHttpRequest
from portal.selectors import api_keys_visible


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("portal:dashboard")
    return render(request, "portal/home.html", {"tiers": tier_list_public()})


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = organisation_for(request, Action.ORGANISATION_VIEW)
    account = membership.account
    context = {
        "account": account,
        "set_by_operator": account_tier_set_by_operator(account),
        # The working keys the member's keys page lists; None: their role sees no keys.
        "key_count": api_keys_visible(membership=membership).usable().count()
        if membership.allows(Action.KEYS_VIEW_OWN)
        else None,
    }
    return render(request, "portal/dashboard.html", context)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler403``. A member whose role does not allow the page (``RoleRefused``) is told
    their role and the roles that would, read from ``ROLE_ACTIONS`` so the page cannot say
    other than the table; any other refusal gets the plain page. A caller that asked for JSON
    (and not HTML) gets JSON: the /v1/ API answers its own 403s as problems and never comes
    here."""
    if request.accepts("application/json") and not request.accepts("text/html"):
        return JsonResponse({"detail": str(exception) or "Forbidden."}, status=403)
    context: dict[str, object] = {}
    if isinstance(exception, RoleRefused):
        membership = exception.membership
        context = {
            "organisation": membership.account,
            "role": membership.get_role_display(),
            "allowed_roles": [role.label for role in roles_allowing(exception.action)],
        }
    return render(request, "403.html", context, status=403)


@require_GET
def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico wherever a page names no icon (the admin's pages, JSON
    answers): the one icon, which every page of ours links itself."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


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
    health = _health()
    body: dict[str, object] = {"checks": health.checks}
    if health.findings:
        body["findings"] = health.findings
    return JsonResponse(
        {"status": "ok" if health.healthy else "error", **body},
        status=200 if health.healthy else 503,
    )


# What each check is about, and what its answers mean, for people (the status page).
CHECK_NAMES = {
    "database": "Database",
    "redis": "Cache and job queue (Redis)",
    "metering_redis": "Usage metering (Redis)",
}
CHECK_WORDS = {
    "ok": "Working",
    "unsafe": "Working, but configured so that it could lose usage data",
    "unknown": "Working; its configuration could not be read",
}


@require_GET
@never_cache
def status(request: HttpRequest) -> HttpResponse:
    """The /healthz checks in words, for the footer's Status link (machines keep /healthz)."""
    health = _health()
    rows = [
        {
            "name": CHECK_NAMES.get(name, name),
            "ok": value in _SERVING,
            "words": CHECK_WORDS.get(value, "Not answering"),
            "findings": health.findings.get(name, []),
        }
        for name, value in health.checks.items()
    ]
    return render(request, "portal/status.html", {"healthy": health.healthy, "rows": rows})


@dataclass(frozen=True, slots=True)
class _Health:
    # Check name -> "ok", "unsafe", "unknown" or "error: <exception class>".
    checks: dict[str, str]
    # Check name -> short codes of what is unsafe (metering.redis_safety).
    findings: dict[str, list[str]]

    @property
    def healthy(self) -> bool:
        return all(value in _SERVING for value in self.checks.values())


def _health() -> _Health:
    checks: dict[str, str] = {}
    findings: dict[str, list[str]] = {}
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
            findings["metering_redis"] = list(safety.codes)
    return _Health(checks=checks, findings=findings)


def _redis_status(url: str) -> str:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.ping()
        return "ok"
    except redis.RedisError as exc:
        return f"error: {exc.__class__.__name__}"
