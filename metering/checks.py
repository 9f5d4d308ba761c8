"""``manage.py check --deploy``: is the metering Redis configured to keep billing data?

A deployment check (``deploy=True``) on purpose: it asks Redis over the network, and Django runs
the ordinary checks before nearly every management command (``migrate`` included, and every
command a cron job starts), where a slow or absent Redis would hold each of them up by a
timeout and print a warning nobody asked for. ``check --deploy`` is the deployment checklist
(https://docs.djangoproject.com/en/5.2/ref/django-admin/#cmdoption-check-deploy); run it alone
with ``--tag metering_redis``. Nothing here raises: a Redis that does not answer is a warning.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from metering.redis_safety import Finding
from metering.selectors import metering_redis_safety

UNREACHABLE_ID = "metering.W001"
# One id per kind of risk, so an operator may silence one knowingly (SILENCED_SYSTEM_CHECKS).
FINDING_IDS = {
    "no-persistence": "metering.W002",
    "rdb-only": "metering.W002",
    "no-aof": "metering.W002",
    "aof-fsync-no": "metering.W002",
    "aof-write-failing": "metering.W003",
    "eviction-policy": "metering.W004",
    "slots-uncovered": "metering.W005",
    "aof-fsync-unknown": "metering.W006",
    "eviction-policy-unknown": "metering.W006",
}


@checks.register("metering_redis", deploy=True)
def metering_redis_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> Iterable[checks.CheckMessage]:
    if not settings.METERING_REDIS_URL:
        return []
    safety = metering_redis_safety()
    if safety is None:
        return []
    if safety.error is not None:
        return [
            checks.Warning(
                f"The metering Redis did not answer: {safety.error}",
                hint="Check METERING_REDIS_URL; the API refuses or stops metering calls "
                "(METERING_FAIL_MODE) until it answers.",
                id=UNREACHABLE_ID,
            )
        ]
    return [_warning(finding) for finding in safety.findings]


def _warning(finding: Finding) -> checks.Warning:
    return checks.Warning(
        f"The metering Redis at {finding.node}: {finding.detail}.",
        hint=finding.hint,
        id=FINDING_IDS[finding.code],
    )
