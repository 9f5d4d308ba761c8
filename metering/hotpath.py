"""Metering one API request: admit it (one limiter call), then settle it after the view ran.

``admit`` is called by ``portal.api.throttling.TierThrottle`` at DRF's throttle hook, after
authentication and permissions, so a 401 or 403 never reaches the counters. ``settle`` is called
by ``MeteredAPIView.finalize_response`` for every response: the API's exception handler turns
every exception, unexpected ones included, into a response, so a 500 is settled (given back)
like any other outcome that is not billable. A ``settled`` flag makes a second call a no-op.

Both count for ``/metrics`` (``metering/metrics.py``): ``admit`` what the limiter decided and how
long it took, ``settle`` the refusals answered before the limiter was asked.
"""

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from metering.headers import rate_limit_headers
from metering.limiter import get_limiter
from metering.limiter.base import (
    BILLABLE_STATUSES,
    Decision,
    LimiterUnavailable,
    Outcome,
    Policy,
)
from metering.metrics import LIMITER_SECONDS, decision_count, refusal_count
from metering.selectors import quota_seed_units
from portal.principal import ApiPrincipal

logger = logging.getLogger(__name__)


class _Throttled:
    """Logs at most one line per ``interval`` seconds and counts what it held back: when Redis
    is down every request fails the same way, and one line per request would bury the log."""

    def __init__(self, interval: float):
        self.interval = interval
        self._lock = threading.Lock()
        self._last = -math.inf
        self._held = 0

    def __call__(self, level: int, message: str, *args: object) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        if held:
            message += " (%d more like this in the last %.0f s)"
            args = (*args, held, self.interval)
        logger.log(level, message, *args)


_log_unavailable = _Throttled(interval=10.0)
_log_late_give_back = _Throttled(interval=10.0)


# key id -> (the principal last seen for the key, its policy). The key cache hands out the same
# principal object for as long as it keeps a key, so the policy is built once per key and cache
# period; a key's next principal replaces its entry. Keyed by the key, not by the principal's
# id: an entry per principal kept every principal the key cache had dropped (a new one per key
# every API_KEY_CACHE_SECONDS) until 20,000 of them, about 20 MB of each worker's memory
# (bench/soak.py measured the growth). Bounded all the same: cleared past the key cache's size.
_policies: dict[int, tuple[ApiPrincipal, Policy]] = {}
_POLICIES_MAX = 20_000


def policy_for(principal: ApiPrincipal) -> Policy:
    cached = _policies.get(principal.key_id)
    if cached is not None and cached[0] is principal:
        return cached[1]
    policy = Policy(
        rate_per_minute=principal.rate_limit,
        burst=principal.burst or principal.rate_limit,
        quota=principal.quota,
        overage_policy=principal.overage_policy,
        overage_cap=principal.overage_cap,
        period_start=principal.period_start,
        period_end=principal.period_end,
    )
    if len(_policies) >= _POLICIES_MAX:
        _policies.clear()
    _policies[principal.key_id] = (principal, policy)
    return policy


def _timed(call: Callable[..., Decision], **kwargs) -> Decision:
    """One limiter call, its duration observed; a failed call's too (a timeout is exactly the
    latency an operator needs to see)."""
    started = time.perf_counter()
    try:
        return call(**kwargs)
    finally:
        LIMITER_SECONDS.observe(time.perf_counter() - started)


def admit(
    *,
    principal: ApiPrincipal,
    endpoint: str,
    cost: int,
    billable_statuses: Iterable[int] = BILLABLE_STATUSES,
) -> Decision:
    """Rate limit + quota + usage count for one request, in one limiter call.

    The first request of a period (or after Redis lost its data) finds no quota counter; the
    counter is then seeded (the period's rollups plus the usage Redis still holds,
    ``quota_seed_units``) and the call made again. Raises
    ``LimiterUnavailable`` when the limiter does not answer and METERING_FAIL_MODE is closed.
    Answers ``STALE`` (nothing counted) when the account changed since ``principal`` was read.
    """
    policy = policy_for(principal)
    limiter = get_limiter()
    hit = partial(
        _timed,
        limiter.hit,
        account_id=principal.account_id,
        key_id=principal.key_id,
        endpoint=endpoint,
        cost=cost,
        policy=policy,
        version=principal.version,
    )
    try:
        decision = hit()
        if decision.outcome == Outcome.NEEDS_SEED:
            seed = quota_seed_units(
                account_id=principal.account_id,
                period_start=policy.period_start,
                period_end=policy.period_end,
            )
            decision = hit(seed=seed)
    except LimiterUnavailable as exc:
        if settings.METERING_FAIL_MODE != "open":
            _log_unavailable(
                logging.ERROR, "Limiter unavailable, refusing API calls (fail closed): %s", exc
            )
            raise
        _log_unavailable(
            logging.WARNING,
            "Limiter unavailable, admitting API calls unmetered (fail open): %s",
            exc,
        )
        decision = Decision(
            outcome=Outcome.UNMETERED,
            account_id=principal.account_id,
            key_id=principal.key_id,
            endpoint=endpoint,
            cost=cost,
            policy=policy,
            now=time.time(),
        )
    decision.billable_statuses = billable_statuses
    decision_count(decision)
    return decision


def settle(request: HttpRequest, response: HttpResponse) -> None:
    """Give back the units of a non-billable outcome and add the rate-limit headers."""
    decision: Decision | None = getattr(request, "metering_decision", None)
    if decision is None:
        # Refused before the limiter decided (no key, a suspension, a scope, Redis down...).
        refusal_count(response)
        return
    if decision.settled:
        return
    decision.settled = True
    if decision.counted and response.status_code not in decision.billable_statuses:
        give_back(decision)
    for name, value in rate_limit_headers(decision).items():
        response[name] = value


def give_back(decision: Decision) -> None:
    """Return an admitted request's units and request count, once. A free call (cost 0)
    gives back its request count only (give_back.lua never sends Redis ``HINCRBY ... -0``,
    which it refuses as "not an integer": redis/redis#11683)."""
    if decision.given_back or not decision.counted:
        return
    decision.given_back = True
    try:
        returned = get_limiter().give_back(decision)
    except LimiterUnavailable as exc:
        # The units stay counted: the developer is billed for a call that failed. Logged with
        # everything an operator needs to grant a credit, one line per call: only Redis failing
        # between admit and settle gets here, never what a caller sends.
        logger.error(
            "Could not give back %d units of account %d (key %d, %s, minute %d): %s",
            decision.cost,
            decision.account_id,
            decision.key_id,
            decision.endpoint,
            decision.minute,
            exc,
        )
        return
    if not returned:
        # A caller who sends a body slowly enough can make a request outlast the rollup's grace
        # and reach this line at will, so it is throttled; the call's units stay billed.
        _log_late_give_back(
            logging.WARNING,
            "Give-back of %d units of account %d came after minute %d was rolled up; "
            "the request took longer than the rollup's grace",
            decision.cost,
            decision.account_id,
            decision.minute,
        )
        return
    decision.rate_remaining += decision.cost
    decision.rate_reset = max(
        0.0, decision.rate_reset - decision.cost * decision.policy.interval_us / 1e6
    )
    decision.quota_used -= decision.cost
