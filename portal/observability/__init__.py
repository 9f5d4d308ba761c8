"""What the portal tells its operators: errors (Sentry, or email to ADMINS), logs (plain or JSON
lines) and the scrape behind ``/metrics``.

``errors`` and ``logs`` are imported by the settings module, before the apps are loaded: they
must not import models.
"""
