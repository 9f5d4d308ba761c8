"""Rate-limit response headers: IETF httpapi ratelimit-headers (draft 11) plus the X- trio.

Two policies are advertised:

- ``"minute"``: the tier's rate limit as the limiter applies it. ``q`` is the burst (units that
  may be spent at once) and ``w`` the seconds a spent burst takes to come back; with the default
  burst that is ``q=<units per minute>;w=60``. ``r`` is what may be spent now, ``t`` the seconds
  until the burst is full again.
- ``"period"``: the billing period's quota (included units plus credits, and on a ``bill`` tier
  the overage its spend cap pays for), advertised only when it can refuse a call (a ``block``
  tier, or a ``bill`` tier with a spend cap). ``r`` is the units left before refusal, ``t`` the
  seconds until the period ends.

``RateLimit-Policy`` lists both in a fixed order (draft 11 §3: its value "SHOULD remain
consistent over a sequence of HTTP responses"). ``RateLimit`` lists both too, the binding one
first, and ``X-RateLimit-Limit/Remaining/Reset`` (Reset as Unix epoch seconds, as GitHub sends
it), which have room for one limit only, describe the binding one:

- on a refused call, the policy that refused it, read as ``r=0`` until the moment Retry-After
  names (the period's end for the quota). Units may be left (a call of 5 units refused with 3
  left), but a client told "3 remaining" would send the same call again at once; the draft lets
  a server lower the values it conveys (draft 11 §6, "a server MAY artificially lower RateLimit
  header field values"), and its earlier form wants the reset to "reference the same point in
  time as the Retry-After field value" (draft 06 §5).
- on an admitted call, the policy with fewer units left, the period's on a tie (waiting out the
  later reset satisfies both): draft 06, whose fields the X- trio mirrors, says "the server MUST
  reply with the RateLimit fields related to the time window with the lower RateLimit-Remaining
  field values" (§5) and sets the limit to "the service limit that is closest to reaching its
  limit" (§4.1). https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/
"""

import math
from dataclasses import dataclass

from metering.limiter.base import Decision, Outcome

# The policy whose limit refused a call of each refused outcome.
REFUSING_POLICY = {Outcome.RATE_LIMITED: "minute", Outcome.QUOTA_EXCEEDED: "period"}


@dataclass(frozen=True, slots=True)
class AdvertisedLimit:
    """One policy as the headers state it: ``q``/``w`` of RateLimit-Policy, ``r``/``t`` of
    RateLimit."""

    name: str
    quota: int
    window_seconds: int
    remaining: int
    reset_seconds: int


def advertised_limits(decision: Decision) -> list[AdvertisedLimit]:
    """The policies in RateLimit-Policy's fixed order: the minute, then the period (if any)."""
    policy = decision.policy
    limits = [
        AdvertisedLimit(
            name="minute",
            quota=policy.burst,
            window_seconds=policy.burst_window_seconds,
            remaining=max(0, min(policy.burst, decision.rate_remaining)),
            reset_seconds=max(0, math.ceil(decision.rate_reset)),
        )
    ]
    limit = policy.quota_limit
    if limit is not None:
        limits.append(
            AdvertisedLimit(
                name="period",
                quota=limit,
                window_seconds=int((policy.period_end - policy.period_start).total_seconds()),
                remaining=max(0, limit - decision.quota_used),
                reset_seconds=max(0, math.ceil(policy.period_end_epoch - decision.now)),
            )
        )
    refusing = REFUSING_POLICY.get(decision.outcome)
    if refusing is None:
        return limits
    # Nothing more goes through under the refusing policy until Retry-After has passed.
    wait = max(0, math.ceil(decision.retry_after))
    return [
        AdvertisedLimit(item.name, item.quota, item.window_seconds, 0, wait)
        if item.name == refusing
        else item
        for item in limits
    ]


def binding_limit(decision: Decision, limits: list[AdvertisedLimit]) -> AdvertisedLimit:
    """The limit closest to refusing: the refusing one, else the fewest units left (ties: the
    one that resets later)."""
    refusing = REFUSING_POLICY.get(decision.outcome)
    for item in limits:
        if item.name == refusing:
            return item
    return min(limits, key=lambda item: (item.remaining, -item.reset_seconds))


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    # Formatted once per policy (``Policy.rate_limit_policy``): the same items, in the same
    # order, as ``advertised_limits`` lists them.
    headers = {"RateLimit-Policy": decision.policy.rate_limit_policy}
    if decision.outcome == Outcome.UNMETERED:
        # The limiter did not answer (fail open): the policy stands, the counts are unknown.
        headers["X-RateLimit-Limit"] = str(decision.policy.burst)
        return headers
    limits = advertised_limits(decision)
    binding = binding_limit(decision, limits)
    ordered = [binding, *(item for item in limits if item is not binding)]
    headers["RateLimit"] = ", ".join(
        f'"{item.name}";r={item.remaining};t={item.reset_seconds}' for item in ordered
    )
    headers["X-RateLimit-Limit"] = str(binding.quota)
    headers["X-RateLimit-Remaining"] = str(binding.remaining)
    headers["X-RateLimit-Reset"] = str(math.ceil(decision.now + binding.reset_seconds))
    return headers
