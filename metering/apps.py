from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"
    verbose_name = "Metering"

    def ready(self) -> None:
        # Publishes account changes to the limiter's Redis (portal's account_changed signal).
        # The checks module registers `check --deploy`'s look at the metering Redis.
        from metering import checks, receivers  # noqa: F401

        # metering.limiter.checks registers the (offline) check of METERING_REDIS_URL's form.
        from metering.limiter import checks as limiter_checks  # noqa: F401
