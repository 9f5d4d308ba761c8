"""Settings of the bench scripts: the real settings, a bench-only URLconf (bench/_urls.py), and
tables made straight from the models (dj-stripe's migrations take ~40 s; a bench needs only the
tables)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench._urls"


class _NoMigrations(dict):
    """Every app "has no migrations", so ``migrate --run-syncdb`` creates all tables at once."""

    def __contains__(self, app_label):
        return True

    def __getitem__(self, app_label):
        return None


MIGRATION_MODULES = _NoMigrations()
