from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"
    verbose_name = "Metering"

    def ready(self) -> None:
        # Publishes account changes to the limiter's Redis (portal's account_changed signal).
        from metering import receivers  # noqa: F401
