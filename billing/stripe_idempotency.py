"""Creating a Stripe object at most once, while a server error still leaves the next try free.

Stripe saves the first answer to a request with an Idempotency-Key once the endpoint began
executing, "including 500 errors", and replays it to every request with that key for at least
24 hours (Idempotent requests, https://docs.stripe.com/api/idempotent_requests). One fixed key
per object guards against a duplicate (a retry after a lost answer gets the first answer back),
but a single 500 then blocks the object for a day: every retry only replays the 500.

So each object has a chain of keys (``stripe_specs.idempotency_key(..., attempt=n)``): key 0 is
the one it always had, and key n+1 is sent only once Stripe *replays* a server error for key n.
A replay says so in its answer (``Idempotent-Replayed: true``; read from the raw headers, as
Stripe's SDK maintainers point out: https://github.com/stripe/stripe-ruby/issues/905,
https://github.com/stripe/stripe-ruby/pull/1553).
Why that never creates a duplicate:

- a key is skipped only when its saved answer is a server error, never when it is a success,
  so a create that worked is replayed, not repeated; two runs at once walk the same chain and
  send the same key, so Stripe executes one of them (the other is refused or replayed);
- a 500 may still hide work Stripe did before failing, so every caller looks the object up
  before creating it (a product by its id, a price by lookup key, the meter by event name, a
  customer by email and account id) and the next run finds it instead of creating another;
- a fresh (not replayed) server error is raised, so the caller fails fast and the next run,
  which skips past it, is the retry.

Without the header (if Stripe ever dropped it) a replayed 500 is raised like any other: the old
one-day block, never a duplicate.
"""

from collections.abc import Callable
from typing import Any, TypeVar

import stripe

from billing import stripe_specs

T = TypeVar("T")

# How many keys of one object's chain a single call walks. Each fresh 500 adds one replayed key
# for the next 24 hours; past this many Stripe is failing for reasons a retry will not fix, and
# the last error is raised.
KEYS_PER_OBJECT = 20


def is_replayed_server_error(error: stripe.StripeError) -> bool:
    """Whether Stripe answered with a 5xx it had saved under the request's Idempotency-Key."""
    headers = {name.lower(): value for name, value in (error.headers or {}).items()}
    return (error.http_status or 0) >= 500 and headers.get("idempotent-replayed") == "true"


def create_once(create: Callable[[str], T], kind: str, *parts: Any) -> T:
    """``create(idempotency_key)`` under the first key of the object's chain that Stripe has not
    already answered with a server error. ``kind`` and ``parts`` name the object and the request
    as for ``stripe_specs.idempotency_key``."""
    last: stripe.StripeError | None = None
    for attempt in range(KEYS_PER_OBJECT):
        try:
            return create(stripe_specs.idempotency_key(kind, *parts, attempt=attempt))
        except stripe.StripeError as error:
            if not is_replayed_server_error(error):
                raise
            last = error
    assert last is not None
    raise last
