"""The DRF throttle of the metered API: per-tier rate limit, quota and usage count in one call.

DRF runs throttles after authentication and permissions, so only requests with a valid key on
an endpoint their tier may call get here. Refusals are raised from ``allow_request`` (rather
than returned as False) so each carries its own status, message and problem members; the
API's exception handler renders ``problem_extra`` into the problem+json body and turns ``wait``
into ``Retry-After``.

Quota exhausted is a 429 with ``Retry-After`` to the end of the period, not a 403: the
request is fine, the account has spent what it may until then, and the ``"period"`` item of the
``RateLimit`` header says the same (``r=0``, ``t`` = seconds to the period's end).
"""

import math
from datetime import UTC

from rest_framework import status
from rest_framework.exceptions import APIException, PermissionDenied, Throttled
from rest_framework.throttling import BaseThrottle

from metering.hotpath import BILLABLE_STATUSES, admit
from metering.limiter.base import Decision, LimiterUnavailable, Outcome
from portal.api.problems import ProblemType, register_problem_type, upgrade_url
from portal.keys.cache import key_cache
from portal.principal import ApiPrincipal

register_problem_type(
    ProblemType(
        "quota-exceeded",
        "Quota exceeded",
        429,
        "The account has used the units its tier allows this billing period (on a paid tier "
        "with a spend cap: the included units and the overage the cap pays for). Calls are "
        "refused until the period ends, which Retry-After counts down in seconds; the RateLimit "
        "headers describe the period's quota first. To continue now, upgrade on the pricing "
        "page (the upgrade_url member).",
    )
)
register_problem_type(
    ProblemType(
        "cost-above-burst",
        "This endpoint costs more than your tier may spend at once",
        403,
        "The endpoint's cost in units is larger than the tier's burst, so no amount of waiting "
        "would let the call through. Upgrade to a tier with a larger rate limit on the pricing "
        "page (the upgrade_url member).",
    )
)


class _Refused(Throttled):
    """A refusal with its own sentence (DRF's ``Throttled`` appends a generic one)."""

    def __init__(self, *, detail: str, wait: float | None, problem_extra: dict):
        APIException.__init__(self, detail=detail)
        self.wait = None if wait is None else max(1, math.ceil(wait))
        self.problem_extra = problem_extra


class RateLimited(_Refused):
    default_code = "rate_limited"
    problem_type = "rate-limited"

    def __init__(self, decision: Decision):
        policy = decision.policy
        wait = max(1, math.ceil(decision.retry_after))
        super().__init__(
            detail=(
                f"Rate limit exceeded: your tier allows {policy.rate_per_minute} units per minute "
                f"(bursts of up to {policy.burst}) and this call costs {decision.cost}. "
                f"Retry in {wait} s."
            ),
            wait=wait,
            problem_extra={
                "policy": "minute",
                "limit": policy.rate_per_minute,
                "burst": policy.burst,
                "cost": decision.cost,
                "remaining": max(0, decision.rate_remaining),
                "retry_after": wait,
            },
        )


class QuotaExceeded(_Refused):
    default_code = "quota_exceeded"
    problem_type = "quota-exceeded"

    def __init__(self, decision: Decision):
        policy = decision.policy
        limit = policy.quota_limit
        period_end = policy.period_end.astimezone(UTC)
        if policy.overage_policy == "block":
            what = (
                f"This billing period's quota is used up: {decision.quota_used:,} of the "
                f"{policy.quota:,} units it includes are spent"
            )
        else:
            what = (
                f"This billing period's spend cap is reached: {decision.quota_used:,} units are "
                f"spent, the {policy.quota:,} included and the {policy.overage_cap or 0:,} of "
                "overage your spend cap pays for"
            )
        super().__init__(
            detail=(
                f"{what}, and this call costs {decision.cost}. Calls are refused until the "
                f"period renews on {period_end:%Y-%m-%d %H:%M} UTC (see Retry-After). "
                "Upgrade your tier to keep calling before then: see upgrade_url."
            ),
            wait=decision.retry_after,
            problem_extra={
                "policy": "period",
                "limit": limit,
                "used": decision.quota_used,
                "cost": decision.cost,
                "included": policy.quota,
                "overage_policy": policy.overage_policy,
                "period_end": period_end.isoformat().replace("+00:00", "Z"),
                "upgrade_url": upgrade_url(),
            },
        )


class CostAboveBurst(PermissionDenied):
    """An endpoint that costs more than the tier's burst could never be admitted; waiting
    would not help, so this is a 403 naming the way out."""

    default_code = "cost_above_burst"
    problem_type = "cost-above-burst"

    def __init__(self, *, cost: int, burst: int):
        super().__init__(
            detail=(
                f"This endpoint costs {cost} units, more than the {burst} your tier may spend "
                "at once. Upgrade to a tier with a larger rate limit to call it: see upgrade_url."
            )
        )
        self.problem_extra = {"cost": cost, "burst": burst, "upgrade_url": upgrade_url()}


class MeteringUnavailable(APIException):
    """The limiter did not answer and the API fails closed: nothing unmetered gets through."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Usage metering is briefly unavailable; the call was not run. Retry shortly."
    default_code = "metering_unavailable"
    problem_type = "service-unavailable"
    wait = 5


class TierThrottle(BaseThrottle):
    """Admits a request by its key's tier: rate limit and quota in units, usage counted.

    Requests that are not made with an API key (``request.auth`` is not an ``ApiPrincipal``)
    or to a view without an ``endpoint_name`` are not metered here.
    """

    def __init__(self):
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        principal = request.auth
        endpoint = getattr(view, "endpoint_name", None)
        if not isinstance(principal, ApiPrincipal) or not endpoint:
            return True
        decision = self._admit(view, principal, endpoint)
        if decision.outcome == Outcome.STALE:
            # Another process changed the account (a key revoked, a tier moved, a suspension)
            # after this one cached it: authenticate and authorise the request anew, then ask
            # once more. A refusal raises here, as it would have at the door.
            key_cache.drop_account(principal.account_id)
            request._authenticate()
            view.check_permissions(request)
            decision = self._admit(view, request.auth, endpoint)
            if decision.outcome == Outcome.STALE:
                raise MeteringUnavailable()
        # On the Django request, which outlives DRF's wrapper; DRF's Request reads missing
        # attributes from the request it wraps, so settle() finds it on either.
        request._request.metering_decision = decision
        if decision.admitted:
            return True
        self._wait = decision.retry_after
        if decision.outcome == Outcome.QUOTA_EXCEEDED:
            raise QuotaExceeded(decision)
        raise RateLimited(decision)

    def _admit(self, view, principal: ApiPrincipal, endpoint: str) -> Decision:
        cost = int(getattr(view, "cost", 1))
        burst = principal.burst or principal.rate_limit
        if cost > burst:
            raise CostAboveBurst(cost=cost, burst=burst)
        try:
            return admit(
                principal=principal,
                endpoint=endpoint,
                cost=cost,
                billable_statuses=getattr(view, "billable_statuses", BILLABLE_STATUSES),
            )
        except LimiterUnavailable as exc:
            raise MeteringUnavailable() from exc

    def wait(self) -> float | None:
        return self._wait
