"""Rate-limit response headers: IETF httpapi ratelimit-headers (draft 11) plus the X- trio.

Two policies are advertised:

- ``"minute"``: the tier's rate limit as the limiter applies it. ``q`` is the burst (units that
  may be spent at once) and ``w`` the seconds a spent burst takes to come back; with the default
  burst that is ``q=<units per minute>;w=60``. ``r`` is what may be spent now, ``t`` the seconds
  until the burst is full again.
- ``"period"``: the billing period's quota, advertised only when it can refuse a call (a
  ``block`` tier, or a ``bill`` tier with a spend cap). ``r`` is the units left before refusal,
  ``t`` the seconds until the period ends.

``X-RateLimit-Limit/Remaining/Reset`` describe the minute policy (Reset as Unix epoch seconds,
as GitHub sends it), for clients that predate the draft.
"""

import math

from metering.limiter.base import Decision, Outcome


def policy_header(decision: Decision) -> str:
    policy = decision.policy
    items = [f'"minute";q={policy.burst};w={policy.burst_window_seconds}']
    limit = policy.quota_limit
    if limit is not None:
        period_seconds = int((policy.period_end - policy.period_start).total_seconds())
        items.append(f'"period";q={limit};w={period_seconds}')
    return ", ".join(items)


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    policy = decision.policy
    headers = {
        "RateLimit-Policy": policy_header(decision),
        "X-RateLimit-Limit": str(policy.burst),
    }
    if decision.outcome == Outcome.UNMETERED:
        # The limiter did not answer (fail open): the policy stands, the counts are unknown.
        return headers
    remaining = max(0, min(policy.burst, decision.rate_remaining))
    reset = max(0, math.ceil(decision.rate_reset))
    items = [f'"minute";r={remaining};t={reset}']
    limit = policy.quota_limit
    if limit is not None:
        period_left = max(0, math.ceil(policy.period_end_epoch - decision.now))
        items.append(f'"period";r={max(0, limit - decision.quota_used)};t={period_left}')
    headers["RateLimit"] = ", ".join(items)
    headers["X-RateLimit-Remaining"] = str(remaining)
    headers["X-RateLimit-Reset"] = str(math.ceil(decision.now + reset))
    return headers
