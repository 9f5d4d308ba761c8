"""Metering one API request: admit it (one limiter call), then settle it after the view ran.

A call reserves its endpoint's cost when admitted; ``settle`` keeps what it actually cost (a
variable cost: ``units``, up to the reserved cost) and gives the rest back in one limiter call,
none when nothing goes back. ``admit_async`` and ``settle_async`` are the same for the gateway's
proxy, which runs on an event loop.

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

from metering.headers import advertised_limits, rate_limit_headers
from metering.limiter import get_limiter
from metering.limiter.base import (
    BILLABLE_STATUSES,
    Decision,
    LimiterUnavailable,
    Outcome,
    Policy,
    Reservation,
    Settlement,
    SettleResult,
)
from metering.metrics import LIMITER_SECONDS, decision_count, refusal_count
from metering.selectors import quota_seed_units
from portal.database import db_read
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
        decision = _unavailable(exc, principal, endpoint, cost, policy)
    decision.billable_statuses = billable_statuses
    decision_count(decision)
    return decision


def _unavailable(
    exc: LimiterUnavailable, principal: ApiPrincipal, endpoint: str, cost: int, policy: Policy
) -> Decision:
    """Fail closed (re-raise: the caller answers 503) or open (admitted, not counted)."""
    if settings.METERING_FAIL_MODE != "open":
        _log_unavailable(
            logging.ERROR, "Limiter unavailable, refusing API calls (fail closed): %s", exc
        )
        raise exc
    _log_unavailable(
        logging.WARNING,
        "Limiter unavailable, admitting API calls unmetered (fail open): %s",
        exc,
    )
    return Decision(
        outcome=Outcome.UNMETERED,
        account_id=principal.account_id,
        key_id=principal.key_id,
        endpoint=endpoint,
        cost=cost,
        policy=policy,
        now=time.time(),
    )


def settle(request: HttpRequest, response: HttpResponse, *, units: int | None = None) -> None:
    """Settle the request's decision by its response and add the rate-limit headers.

    ``units``: what the call actually cost (0..the cost it reserved; None: all of it)."""
    decision: Decision | None = getattr(request, "metering_decision", None)
    if decision is None:
        # Refused before the limiter decided (no key, a suspension, a scope, Redis down...).
        refusal_count(response)
        return
    if decision.settled:
        return
    for name, value in settle_decision(decision, status=response.status_code, units=units).items():
        response[name] = value


def settle_decision(decision: Decision, *, status: int, units: int | None = None) -> dict[str, str]:
    """Keep the units the call cost and give the rest back, in at most one limiter call, once;
    the rate-limit headers of the response, which reflect what was settled.

    A ``status`` the decision does not bill gives back every unit and the request (an error,
    counted as one); a billable one keeps ``units`` (clamped to 0..the reserved cost; None: all
    of them) and gives back the rest. Nothing to give back: no limiter call. A second call on
    the same decision changes nothing and returns the same headers."""
    if not decision.settled:
        decision.settled = True
        kept, error = _settling(decision, status, units)
        if error:
            give_back(decision)
        elif kept < decision.cost:
            _record(decision, _settle_sync(decision, kept), kept)
        else:
            decision.units = kept
    return rate_limit_headers(decision)


async def admit_async(
    *,
    principal: ApiPrincipal,
    endpoint: str,
    cost: int,
    billable_statuses: Iterable[int] = BILLABLE_STATUSES,
) -> Decision:
    """``admit`` on an event loop (the gateway's proxy): the same limiter call, through
    redis.asyncio on Redis and directly on the in-process backend; the quota seed is read from
    the database in a thread (``portal.database.db_read``). ``cost`` is the endpoint's maximum:
    what is reserved until ``settle_async``."""
    policy = policy_for(principal)
    limiter = get_limiter()
    hit = partial(
        limiter.hit_async,
        account_id=principal.account_id,
        key_id=principal.key_id,
        endpoint=endpoint,
        cost=cost,
        policy=policy,
        version=principal.version,
    )
    started = time.perf_counter()
    try:
        decision = await hit()
        if decision.outcome == Outcome.NEEDS_SEED:
            seed = await db_read(
                quota_seed_units,
                account_id=principal.account_id,
                period_start=policy.period_start,
                period_end=policy.period_end,
            )
            decision = await hit(seed=seed)
    except LimiterUnavailable as exc:
        decision = _unavailable(exc, principal, endpoint, cost, policy)
    finally:
        LIMITER_SECONDS.observe(time.perf_counter() - started)
    decision.billable_statuses = billable_statuses
    decision_count(decision)
    return decision


async def settle_async(decision: Decision, *, status: int, units: int | None) -> dict[str, str]:
    """``settle_decision`` on an event loop: the same outcome, the same single limiter call."""
    if not decision.settled:
        decision.settled = True
        kept, error = _settling(decision, status, units)
        if error or kept < decision.cost:
            decision.given_back = error
            try:
                result = await get_limiter().settle_async(
                    decision.reservation, units=kept, error=error
                )
            except LimiterUnavailable as exc:
                _log_settle_failed(decision, kept, exc)
                decision.units = decision.cost
            else:
                _record(decision, result, kept)
        else:
            decision.units = kept
    return rate_limit_headers(decision)


def _settling(decision: Decision, status: int, units: int | None) -> tuple[int, bool]:
    """(units kept, whether the outcome is an error) of a counted decision; a decision that
    counted nothing (a refusal, a call let through unmetered) keeps what it has."""
    if not decision.counted:
        return decision.cost, False
    if status not in decision.billable_statuses:
        return 0, True
    if units is None:
        return decision.cost, False
    return min(max(int(units), 0), decision.cost), False


def _settle_sync(decision: Decision, kept: int) -> SettleResult | None:
    try:
        return get_limiter().settle(decision.reservation, units=kept)
    except LimiterUnavailable as exc:
        _log_settle_failed(decision, kept, exc)
        return None


def _log_settle_failed(decision: Decision, kept: int, exc: LimiterUnavailable) -> None:
    # The units stay counted: the developer is billed for what the call reserved. Logged with
    # everything an operator needs to grant a credit, one line per call: only Redis failing
    # between admit and settle gets here, never what a caller sends.
    logger.error(
        "Could not give back %d units of account %d (key %d, %s, minute %d): %s",
        decision.cost - kept,
        decision.account_id,
        decision.key_id,
        decision.endpoint,
        decision.minute,
        exc,
    )


def _record(decision: Decision, result: SettleResult | None, kept: int) -> None:
    """Apply what the limiter gave back to the decision, so the headers show it."""
    if result is None:
        decision.units = decision.cost
        return
    if result.settlement == Settlement.LATE:
        # A caller who sends a body slowly enough can make a request outlast the rollup's grace
        # and reach this line at will, so it is throttled; the call's units stay billed.
        _log_late_give_back(
            logging.WARNING,
            "Give-back of %d units of account %d came after minute %d was rolled up; "
            "the request took longer than the rollup's grace",
            decision.cost - kept,
            decision.account_id,
            decision.minute,
        )
        decision.units = decision.cost
        return
    _returned(decision, result.given_back)
    decision.units = decision.cost - result.given_back


def _returned(decision: Decision, amount: int) -> None:
    decision.rate_remaining += amount
    decision.rate_reset = max(0.0, decision.rate_reset - amount * decision.policy.interval_us / 1e6)
    decision.quota_used -= amount


def give_back(decision: Decision) -> None:
    """Return an admitted request's units and request count, once, and count it as an error.
    A free call (cost 0) gives back its request count only (give_back.lua never sends Redis
    ``HINCRBY ... -0``, which it refuses as "not an integer": redis/redis#11683)."""
    if decision.given_back or not decision.counted:
        return
    decision.given_back = True
    decision.units = 0
    try:
        returned = get_limiter().give_back(decision)
    except LimiterUnavailable as exc:
        _log_settle_failed(decision, 0, exc)
        decision.units = decision.cost
        return
    if not returned:
        _record(decision, SettleResult(Settlement.LATE, 0, True), 0)
        return
    _returned(decision, decision.cost)


def decision_headers(decision: Decision) -> dict[str, str]:
    """The rate-limit headers of a decision as it stands, without settling it (``POST
    /v1/keys/verify`` hands them to an upstream that answers the call itself)."""
    return rate_limit_headers(decision)


def decision_limits(decision: Decision) -> list[dict[str, int | str]]:
    """The limits the headers describe, as data: each policy's name, limit, window, units left
    and seconds until it is full again (or, on a refused call, until Retry-After)."""
    return [
        {
            "name": item.name,
            "limit": item.quota,
            "window_seconds": item.window_seconds,
            "remaining": item.remaining,
            "reset_seconds": item.reset_seconds,
        }
        for item in advertised_limits(decision)
    ]


def settle_reservation(reservation: Reservation, *, units: int, error: bool) -> SettleResult:
    """Settle a call admitted by another request (``POST /v1/keys/settle``): one limiter call,
    recorded even when nothing is given back, so a repeat changes nothing and answers the same.
    Raises ``LimiterUnavailable`` when the limiter does not answer."""
    return get_limiter().settle(reservation, units=units, error=error)
