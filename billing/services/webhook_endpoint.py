"""The portal's Stripe webhook endpoint, registered through dj-stripe (which keeps its
signing secret), and its event destination for thin events (API v2), whose secret we keep."""

import logging
import uuid
from typing import Literal, get_args

import stripe
from django.conf import settings
from django.urls import reverse
from djstripe.models import WebhookEndpoint

from billing.models import StripeEventDestination
from billing.services.subscriptions import AccountEvent
from billing.services.thin_events import METER_ERROR_EVENTS
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


def event_destination_ensure(*, base_url: str | None = None) -> tuple[StripeEventDestination, bool]:
    """The Stripe event destination that sends this portal the meter error thin events, created
    unless one Stripe still knows, enabled and listing those events, is registered for
    ``base_url``'s thin-event URL.

    Thin events never reach a v1 webhook endpoint; an event destination with
    ``event_payload: "thin"`` receives them ("Event destinations",
    https://docs.stripe.com/event-destinations; "Create an event destination",
    https://docs.stripe.com/api/v2/core/event-destinations). Its signing secret is only
    includable in the create call's answer, so it is stored then. Returns
    ``(destination, created)``; rows Stripe no longer knows, or whose destination no longer
    fits, are removed (the unfit one in Stripe too), so the secret in use is the live one.
    """
    base_url = (base_url or settings.SITE_URL).rstrip("/")
    url = base_url + reverse("billing:stripe-thin-events")
    client = stripe_client()
    for row in StripeEventDestination.objects.filter(url=url).order_by("-created"):
        try:
            remote = as_dict(
                client.v2.core.event_destinations.retrieve(
                    row.stripe_id, params={"include": ["webhook_endpoint.url"]}
                )
            )
        except stripe.InvalidRequestError as error:
            if not is_missing(error):
                raise
            logger.info("Forgetting event destination %s: Stripe no longer knows it", row.stripe_id)
            row.delete()
            continue
        fits = (
            remote["status"] == "enabled"
            and remote["event_payload"] == "thin"
            and (remote.get("webhook_endpoint") or {}).get("url") == url
            and set(METER_ERROR_EVENTS) <= set(remote["enabled_events"])
        )
        if fits:
            return row, False
        # Replaced rather than updated: a new one is as cheap, and a disabled or narrowed
        # destination would otherwise keep an error report from reaching us.
        logger.info("Replacing event destination %s: disabled or missing events", row.stripe_id)
        client.v2.core.event_destinations.delete(row.stripe_id)
        row.delete()

    created = as_dict(
        client.v2.core.event_destinations.create(
            params={
                "name": "Meterdesk meter errors",
                "description": "Meter events Stripe refused after accepting them",
                "type": "webhook_endpoint",
                "event_payload": "thin",
                "enabled_events": list(METER_ERROR_EVENTS),
                "webhook_endpoint": {"url": url},
                "include": ["webhook_endpoint.signing_secret"],
            }
        )
    )
    destination = StripeEventDestination.objects.create(
        stripe_id=created["id"],
        url=url,
        secret=created["webhook_endpoint"]["signing_secret"],
        enabled_events=created["enabled_events"],
    )
    return destination, True
