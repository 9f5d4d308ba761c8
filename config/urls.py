from collections.abc import Callable

from allauth.account import views as allauth_views
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.urls import include, path
from django.views.decorators.cache import never_cache
from django_ratelimit.decorators import ratelimit
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from billing import urls as billing_urls
from gateway import urls as gateway_urls
from portal.api import urls as api_urls
from portal.rate_limits import login_email
from portal.views import pages


def _limited(view, rate: str, *keys: str | Callable[[str, HttpRequest], str]):
    """Wrap an allauth view in django-ratelimit: POSTs beyond ``rate`` per key get a 429 page.

    ``"ip"`` is the client's address as portal/client_address.py reads it behind our proxies
    (``RATELIMIT_IP_META_KEY``); a callable key is called as ``key(group, request)``."""
    for key in keys:
        view = ratelimit(key=key, rate=rate, method="POST", block=True)(view)
    return view


urlpatterns = [
    # The API first: every API call resolves its path, and none should first be tried against
    # the pages' patterns. The built-in endpoints (add /v1/ routes in portal/api/urls.py), then
    # the gateway's (the operator's own endpoints, gateway/urls.py), then the catch-all for /v1/.
    path("", include(([*api_urls.routes, *gateway_urls.urlpatterns, *api_urls.fallback], "api"))),
    path("healthz", pages.healthz, name="healthz"),
    path(
        "accounts/login/",
        _limited(allauth_views.login, settings.LOGIN_RATE, "ip", login_email),
        name="account_login",
    ),
    path(
        "accounts/signup/",
        _limited(allauth_views.signup, settings.SIGNUP_RATE, "ip"),
        name="account_signup",
    ),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", never_cache(SpectacularAPIView.as_view()), name="schema"),
    # The split view serves Swagger UI's start-up script from this URL (?script) instead of inline,
    # so the page runs under script-src 'self' (drf-spectacular FAQ, "My swagger-ui and/or redoc
    # page is blank": https://drf-spectacular.readthedocs.io/en/latest/faq.html).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    # dj-stripe's webhook URL behind our checks (billing/webhooks.py `stripe_webhook`).
    path("stripe/", include(billing_urls.djstripe_urlpatterns, namespace="djstripe")),
    path("", include("portal.urls")),
    path("", include("billing.urls")),
    path("", include("metering.urls")),
]

# A refusal by role names the member's role and the roles that may (templates/403.html).
handler403 = pages.permission_denied
