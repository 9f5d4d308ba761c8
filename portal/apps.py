from urllib.parse import urlsplit

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.conf import settings
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


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

        post_migrate.connect(site_sync, sender=self)


def site_sync(*, using: str, apps=global_apps, **kwargs) -> None:
    """Keep the Site row (SITE_ID) saying what SITE_NAME and SITE_URL say, after every migrate
    (and every test database flush). allauth's emails greet with its name and sign with its
    domain ("Hello from <name>!"), which would otherwise stay django.contrib.sites' example.com
    (its post_migrate handler, which runs before ours, makes the row). ``migrate`` passes its
    migration state as ``apps``; ``flush`` (test databases) passes none."""
    try:
        site_model = apps.get_model("sites", "Site")
    except LookupError:  # django.contrib.sites not installed
        return
    site_model.objects.using(using).update_or_create(
        pk=settings.SITE_ID,
        defaults={"domain": urlsplit(settings.SITE_URL).netloc, "name": settings.SITE_NAME},
    )
    # Site.objects.get_current() caches the row per process.
    from django.contrib.sites.models import Site

    Site.objects.clear_cache()


class OperatorAdminConfig(admin_apps.AdminConfig):
    """Django's admin app serving the operators' site (sign-in through allauth, TOTP required).

    Django's documented way to override the default admin site
    (https://docs.djangoproject.com/en/5.2/ref/contrib/admin/#overriding-the-default-admin-site):
    this replaces "django.contrib.admin" in INSTALLED_APPS, and every ``admin.site`` and
    ``@admin.register`` then means that site."""

    default_site = "portal.admin_site.OperatorAdminSite"
    # Not the config "portal" in INSTALLED_APPS picks: that stays PortalConfig.
    default = False
