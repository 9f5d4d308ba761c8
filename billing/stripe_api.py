"""The one place that builds a Stripe client: the right key, API version, base and deadline."""

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
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else {}
    return stripe.StripeClient(
        stripe_api_key(),
        stripe_version=settings.STRIPE_API_VERSION,
        base_addresses=base,
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=timeout or settings.STRIPE_TIMEOUT_SECONDS),
    )
