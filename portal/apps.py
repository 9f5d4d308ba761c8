from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Developer portal"

    def ready(self) -> None:
        # The key cache listens for account changes; the throttle registers its problem types,
        # so their type URIs resolve in every process, including those that have not served an
        # API call yet.
        from portal.api import throttling  # noqa: F401
        from portal.keys import cache  # noqa: F401
