"""The portal's Stripe webhook endpoint, registered through dj-stripe (which keeps its
signing secret)."""

import logging
import uuid
from typing import Literal, get_args

import stripe
from django.conf import settings
from django.urls import reverse
from djstripe.models import WebhookEndpoint

from billing.services.subscriptions import AccountEvent
from billing.stripe_api import as_dict, is_missing, stripe_client

logger = logging.getLogger(__name__)

# The events the portal's webhook endpoint subscribes to: those that change an account, and the
# ones that keep dj-stripe's copies (invoices on the billing page, products, prices) fresh.
WebhookEvent = Literal[
    AccountEvent,
    "invoice.created",
    "invoice.finalized",
    "invoice.payment_succeeded",
    "customer.updated",
    "product.created",
    "product.updated",
    "price.created",
    "price.updated",
]
WEBHOOK_EVENTS: list[WebhookEvent] = list(get_args(WebhookEvent))


def webhook_endpoint_ensure(*, base_url: str | None = None) -> tuple[WebhookEndpoint, bool]:
    """The Stripe webhook endpoint for this portal, created (through dj-stripe, which keeps
    its signing secret) unless one Stripe still knows is already registered for ``base_url``.

    Returns ``(endpoint, created)``. Local rows whose endpoint Stripe no longer knows (deleted
    in the dashboard, or a restarted emulator) are removed, so the secret in use is always
    the live one.
    """
    base_url = (base_url or settings.SITE_URL).rstrip("/")
    prefix = f"{base_url}/stripe/webhook/"
    client = stripe_client()
    for endpoint in WebhookEndpoint.objects.filter(url__startswith=prefix).order_by("-created"):
        try:
            remote = as_dict(client.v1.webhook_endpoints.retrieve(endpoint.id))
        except stripe.InvalidRequestError as error:
            if not is_missing(error):
                raise
            logger.info("Forgetting webhook endpoint %s: Stripe no longer knows it", endpoint.id)
            endpoint.delete()
            continue
        if remote["url"] == endpoint.url and remote["status"] == "enabled" and endpoint.secret:
            missing = set(WEBHOOK_EVENTS) - set(remote["enabled_events"])
            if missing and "*" not in remote["enabled_events"]:
                # A new list: the SDK's params want a list of any of Stripe's events, which a
                # list of only ours is not (a list's item type is fixed).
                remote = as_dict(
                    client.v1.webhook_endpoints.update(
                        endpoint.id, params={"enabled_events": [*WEBHOOK_EVENTS]}
                    )
                )
                remote["secret"] = endpoint.secret
                endpoint = WebhookEndpoint.sync_from_stripe_data(remote)
            return endpoint, False

    endpoint_uuid = uuid.uuid4()
    url = base_url + reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
    created = WebhookEndpoint._api_create(
        url=url,
        api_version=settings.STRIPE_API_VERSION,
        enabled_events=WEBHOOK_EVENTS,
        description="Meterdesk portal",
        metadata={"djstripe_uuid": str(endpoint_uuid)},
        livemode=settings.STRIPE_LIVE_MODE,
    )
    # The signing secret is only in this response; dj-stripe stores it on the row.
    return WebhookEndpoint.sync_from_stripe_data(created), True
