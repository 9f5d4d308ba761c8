"""``manage.py check``: is ``METERING_REDIS_URL`` a URL the limiter can use?

Read only, no network (an ordinary check runs before nearly every management command): a
typo in the URL fails every process at start-up instead of every API call at its first request.
Whether the server it names answers, and is configured to keep billing data, is the deployment
check's job (``metering.checks``).
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from metering.limiter.topology import redis_target

MALFORMED_URL_ID = "metering.E001"


@checks.register("metering_redis")
def limiter_url_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> Iterable[checks.CheckMessage]:
    if not settings.METERING_REDIS_URL:
        return []
    try:
        redis_target(settings.METERING_REDIS_URL)
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint="See docs/deploy.md for the URL of one server, a Redis Cluster and Sentinel.",
                id=MALFORMED_URL_ID,
            )
        ]
    return []
