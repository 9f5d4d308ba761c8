from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Developer portal"

    def ready(self) -> None:
        # The key cache listens for account changes; the throttle registers its problem types,
        # so their type URIs resolve in every process, including those that have not served an
        # API call yet. The checks register themselves with Django's check framework.
        from portal import checks  # noqa: F401
        from portal.api import throttling  # noqa: F401
        from portal.keys import cache  # noqa: F401


class OperatorAdminConfig(admin_apps.AdminConfig):
    """Django's admin app serving the operators' site (sign-in through allauth, TOTP required).

    Django's documented way to override the default admin site
    (https://docs.djangoproject.com/en/5.2/ref/contrib/admin/#overriding-the-default-admin-site):
    this replaces "django.contrib.admin" in INSTALLED_APPS, and every ``admin.site`` and
    ``@admin.register`` then means that site."""

    default_site = "portal.admin_site.OperatorAdminSite"
    # Not the config "portal" in INSTALLED_APPS picks: that stays PortalConfig.
    default = False
