"""The Celery app. Broker: Redis (REDIS_URL); in the embedded mode tasks run eagerly and beat
runs in a thread of ``manage.py serve`` (see docs/architecture.md)."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("meterdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def keep_django_logging(**kwargs) -> None:
    """Workers log as the web processes do: Django's LOGGING (LOG_FORMAT, failed tasks mailed
    to ADMINS), applied by django.setup(). Celery configures logging itself, emptying the root
    logger's handlers, only when this signal has no receiver (celery/app/log.py
    ``setup_logging_subsystem``; https://docs.celeryq.dev/en/stable/userguide/signals.html#setup-logging)."""
