from allauth.account import views as allauth_views
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.decorators.cache import never_cache
from django_ratelimit.decorators import ratelimit
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal.views import pages


def _limited(view, rate: str, *keys: str):
    """Wrap an allauth view in django-ratelimit: POSTs beyond ``rate`` per key get a 429 page."""
    for key in keys:
        view = ratelimit(key=key, rate=rate, method="POST", block=True)(view)
    return view


urlpatterns = [
    path("healthz", pages.healthz, name="healthz"),
    path(
        "accounts/login/",
        _limited(allauth_views.login, settings.LOGIN_RATE, "ip", "post:login"),
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
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    # The API under /v1/ (ends with a catch-all: add /v1/ routes in portal/api/urls.py).
    path("", include("portal.api.urls")),
    path("", include("portal.urls")),
    path("", include("billing.urls")),
    path("", include("metering.urls")),
]
