"""Settings of the bench scripts: the real settings, a bench-only URLconf (bench/_urls.py), and
tables made straight from the models (dj-stripe's migrations take ~40 s; a bench needs only the
tables)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench._urls"

# /bench/nocsp/ takes a page's whole middleware chain but the CSP header: the baseline as it was
# before the CSP middleware (issue 13), when issue 14's hot-path figures were taken.
CONTENT_SECURITY_POLICY = {
    **CONTENT_SECURITY_POLICY,  # noqa: F405
    "EXCLUDE_URL_PREFIXES": [
        *CONTENT_SECURITY_POLICY["EXCLUDE_URL_PREFIXES"],  # noqa: F405
        "/bench/nocsp/",
    ],
}


class _NoMigrations(dict):
    """Every app "has no migrations", so ``migrate --run-syncdb`` creates all tables at once."""

    def __contains__(self, app_label):
        return True

    def __getitem__(self, app_label):
        return None


MIGRATION_MODULES = _NoMigrations()
