from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"
    verbose_name = "Metering"

    def ready(self) -> None:
        # Registers the throttle's problem types, so their type URIs resolve in every process,
        # including those that have not served an API call yet.
        from metering import throttling  # noqa: F401
