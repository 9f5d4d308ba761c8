"""The Celery app. Broker: Redis (REDIS_URL); in the embedded mode tasks run eagerly and beat
runs in a thread of ``manage.py serve`` (see docs/architecture.md)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("meterdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
