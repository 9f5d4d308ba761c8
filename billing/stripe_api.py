"""The one place that builds a Stripe client: the right key, API version, base and deadline;
and the few helpers that read what Stripe answers."""

from typing import Any

import stripe
from django.conf import settings


def stripe_api_key() -> str:
    return (
        settings.STRIPE_LIVE_SECRET_KEY
        if settings.STRIPE_LIVE_MODE
        else settings.STRIPE_TEST_SECRET_KEY
    )


def stripe_client(*, timeout: float | None = None) -> stripe.StripeClient:
    """A client that never retries by itself: callers that retry (the usage reporter) do so with
    the same identifier or idempotency key, and everything else fails fast into a clear state."""
    return stripe.StripeClient(
        stripe_api_key(),
        stripe_version=settings.STRIPE_API_VERSION,
        # None: Stripe's own addresses.
        base_addresses={"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None,
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=timeout or settings.STRIPE_TIMEOUT_SECONDS),
    )


def as_dict(obj: Any) -> dict[str, Any]:
    """A plain dict of a Stripe response (stripe-python 15 objects are no longer dicts)."""
    return obj.to_dict(for_json=True) if hasattr(obj, "to_dict") else dict(obj)


def is_missing(error: stripe.StripeError) -> bool:
    """Whether Stripe refused because it does not know the object asked for."""
    return (
        getattr(error, "code", None) == "resource_missing"
        or getattr(error, "http_status", None) == 404
    )


def expandable_id(value: str | dict[str, Any] | None) -> str | None:
    """The id in an expandable field of a Stripe object: ``"cus_123"``, or the object itself
    when it was expanded (``{"id": "cus_123", ...}``). None: the field is empty."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None
