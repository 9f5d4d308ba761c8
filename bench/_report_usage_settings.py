"""Settings of bench/report_usage.py: the real settings, on a scratch database whose tables are
made straight from the models (dj-stripe's migrations take ~40 s; the bench needs only tables),
the in-process limiter and cache, and quiet logs."""

import os

os.environ.pop("REDIS_URL", None)
os.environ.setdefault("LOG_LEVEL", "WARNING")

from portal.settings import *  # noqa: F403


class _NoMigrations(dict):
    """Every app "has no migrations", so ``migrate --run-syncdb`` creates all tables at once."""

    def __contains__(self, app_label):
        return True

    def __getitem__(self, app_label):
        return None


MIGRATION_MODULES = _NoMigrations()
