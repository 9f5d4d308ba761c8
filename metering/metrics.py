"""Metering's Prometheus metrics: what the hot path decided, how long the limiter took, and how
far the rollup is behind.

The counters and the histogram are moved by ``metering.hotpath`` (``admit`` and ``settle``), at
the cost of a dict lookup and a lock per request: each label's child is made once and kept.
Under gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client keeps them in per-process
files that the scrape adds up (https://prometheus.github.io/client_python/multiprocess/).

The rollup's lag is not a counter but a reading, taken when ``/metrics`` is scraped
(``RollupLagCollector``, listed in ``settings.METRICS_COLLECTORS``).
"""

import logging
import math
import time
from collections.abc import Iterator

from django.http import HttpResponse
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from metering.limiter import get_limiter
from metering.limiter.base import Decision, Outcome

logger = logging.getLogger(__name__)

API_ADMITTED = Counter(
    "meterdesk_api_admitted",
    "API calls the limiter admitted (fail-open calls included), by endpoint.",
    ["endpoint"],
)
API_REFUSED = Counter(
    "meterdesk_api_refused",
    "API calls refused before their handler ran, by reason.",
    ["reason"],
)
# A limiter call is one EVALSHA on Redis: ~0.1-0.3 ms on a local network, and never more than
# METERING_REDIS_TIMEOUT_MS (50 ms by default) before it counts as unreachable. Fine buckets
# below a millisecond, coarse ones up to the timeout.
LIMITER_SECONDS = Histogram(
    "meterdesk_limiter_call_seconds",
    "Time of one limiter call (rate limit + quota + usage count), failed calls included.",
    buckets=(
        0.00005,
        0.0001,
        0.0002,
        0.0003,
        0.0005,
        0.00075,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
    ),
)

# Refusals decided by the limiter.
_QUOTA_REASONS = {"block": "quota", "bill": "spend_cap"}
# Refusals decided before the limiter gave an answer (authentication, permission, the throttle's
# own checks), told apart by the problem type the API answered with: the slug at the end of the
# type URI (/problems/<slug>/, portal/api/problems.py), a documented part of the API.
REFUSAL_REASONS = {
    "unauthenticated": "auth",
    "account-suspended": "suspended",
    "scope-not-allowed": "scope",
    "cost-above-burst": "cost_above_burst",
    "forbidden": "forbidden",
    "service-unavailable": "unavailable",
}
# Every reason, exported at 0 before its first refusal, so a rate() over it has a start.
_refused = {
    reason: API_REFUSED.labels(reason)
    for reason in ["rate", *_QUOTA_REASONS.values(), *REFUSAL_REASONS.values()]
}
_admitted: dict[str, Counter] = {}


def decision_count(decision: Decision) -> None:
    """Count what the limiter said about one call: admitted (by endpoint), or refused for the
    rate or the quota (a ``bill`` tier refuses only at its spend cap). ``STALE`` is asked again
    and not counted."""
    if decision.admitted:
        child = _admitted.get(decision.endpoint)
        if child is None:
            child = _admitted.setdefault(decision.endpoint, API_ADMITTED.labels(decision.endpoint))
        child.inc()
    elif decision.outcome == Outcome.RATE_LIMITED:
        _refused["rate"].inc()
    elif decision.outcome == Outcome.QUOTA_EXCEEDED:
        _refused[_QUOTA_REASONS.get(decision.policy.overage_policy, "quota")].inc()


def refusal_count(response: HttpResponse) -> None:
    """Count a call answered before the limiter decided anything (no decision on the request),
    by the problem type of its answer; answers that are not refusals count nothing."""
    if response.status_code < 400:
        return
    body = getattr(response, "data", None)
    type_uri = body.get("type") if isinstance(body, dict) else None
    if not isinstance(type_uri, str):
        return
    reason = REFUSAL_REASONS.get(type_uri.rstrip("/").rpartition("/")[2])
    if reason is not None:
        _refused[reason].inc()


def rollup_lag_seconds(*, now: float | None = None) -> float:
    """Seconds since the oldest minute still in the limiter became due for the rollup (it is
    due once it ended ``ROLLUP_GRACE_SECONDS`` ago); 0 when nothing due is waiting. The rollup
    job runs every minute, so up to 60 is normal; more means it is failing or not running.

    Reads the limiter (on Redis: the SCAN the rollup itself does once a minute)."""
    from metering.services import ROLLUP_GRACE_SECONDS

    moment = time.time() if now is None else now
    # The same bound as usage_rollup's: minutes that ended at least the grace ago.
    due_before = math.floor(moment - ROLLUP_GRACE_SECONDS - 60) + 1
    pending = get_limiter().pending_buckets(before=due_before)
    if not pending:
        return 0.0
    oldest = min(bucket.minute for bucket in pending)
    return max(0.0, moment - (oldest + 60 + ROLLUP_GRACE_SECONDS))


class RollupLagCollector:
    """``meterdesk_rollup_lag_seconds``, read at scrape time. If the limiter cannot be read the
    value is NaN (and a warning is logged): the scrape itself still succeeds."""

    def collect(self) -> Iterator[Metric]:
        try:
            lag = rollup_lag_seconds()
        except Exception:  # a scrape must answer; the limiter's own errors are logged elsewhere
            logger.warning("Rollup lag not measured: the limiter could not be read", exc_info=True)
            lag = math.nan
        yield GaugeMetricFamily(
            "meterdesk_rollup_lag_seconds",
            "Seconds since the oldest usage minute still waiting in the limiter became due for "
            "the rollup (0: none waiting; up to 60 is normal).",
            value=lag,
        )
