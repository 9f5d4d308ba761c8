"""What Stripe pushes to the portal, through two doors. At both, a delivery first passes the
checks in billing.services.deliveries, before anything of it is stored: a body past
``STRIPE_WEBHOOK_MAX_BYTES`` is a 413; a signature that is not ours, or a timestamp outside
the tolerance either way, a 400; a signed body that is not an event (no ``type``, say), a 400
that stores nothing.

**v1 (snapshot) events** arrive at ``/stripe/webhook/<uuid>/`` (``stripe_webhook``), which
runs those checks, then hands the request to dj-stripe's own view. dj-stripe verifies the
signature again, stores each event once (a second delivery of the same event id runs no
receiver), and syncs the event's object before the receivers below run; each receiver only
hands the event to billing.services.subscriptions. Receivers run inside dj-stripe's
transaction: if one raises, the event is not stored, the webhook answers 500, and Stripe
delivers it again later. Event types nobody listens to (and ``product.*`` / ``price.*``, which
dj-stripe's own receivers store) are accepted with a 200. A request carrying
``X-Djstripe-Webhook-Secret`` is refused whatever DEBUG says: in DEBUG, dj-stripe would verify
the signature with the secret that header names, so anyone could sign an event.

**v2 thin events** (the meter error reports) arrive at ``/stripe/events/`` from our event
destination (``stripe_thin_event``): verified with its secret (400 and nothing stored
otherwise), recorded once, fetched and applied by billing.services.thin_events.
"""

import logging
from uuid import UUID

import stripe
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe.event_handlers import djstripe_receiver
from djstripe.models import Event, WebhookEndpoint
from djstripe.models.webhooks import get_remote_ip
from djstripe.views import ProcessWebhookView

from billing.services.deliveries import (
    DJSTRIPE_SECRET_HEADER,
    SIGNATURE_TOLERANCE_SECONDS,
    DeliveryRefused,
    delivery_signature_verify,
    snapshot_event_read,
    webhook_refusal_record,
)
from billing.services.subscriptions import ACCOUNT_EVENTS, stripe_event_apply
from billing.services.thin_events import thin_event_process, thin_event_verify

logger = logging.getLogger(__name__)


@djstripe_receiver(ACCOUNT_EVENTS)
def account_billing_event(sender, event: Event, **kwargs) -> None:
    stripe_event_apply(event=event)


_djstripe_webhook = ProcessWebhookView.as_view()


# dj-stripe's view manages its own transactions (its trigger row outlives a failed receiver);
# this one must not wrap it in a request-wide one either.
@transaction.non_atomic_requests
@csrf_exempt  # Stripe signs its deliveries; it has no CSRF token
@require_POST
def stripe_webhook(request: HttpRequest, uuid: UUID) -> HttpResponseBase:
    if DJSTRIPE_SECRET_HEADER in request.headers:
        return _refused(
            DeliveryRefused(f"{DJSTRIPE_SECRET_HEADER} is not accepted; Stripe never sends it.")
        )
    try:
        body = _body_within_limit(request)
    except DeliveryRefused as refusal:
        return _refused(refusal)
    if "Stripe-Signature" not in request.headers:
        # Refused before the endpoint is looked up: nothing is stored for an unsigned request.
        return _refused(DeliveryRefused("No Stripe-Signature header."))
    endpoint = get_object_or_404(WebhookEndpoint, djstripe_uuid=uuid)
    try:
        delivery_signature_verify(
            body=body,
            signature=request.headers["Stripe-Signature"],
            secrets=[endpoint.secret] if endpoint.secret else [],
            tolerance=endpoint.djstripe_tolerance or SIGNATURE_TOLERANCE_SECONDS,
        )
    except DeliveryRefused as refusal:
        webhook_refusal_record(
            endpoint=endpoint,
            headers=request.headers,
            body=body,
            remote_ip=get_remote_ip(request),
            reason=refusal.message,
        )
        return _refused(refusal)
    try:
        snapshot_event_read(body=body)
    except DeliveryRefused as refusal:
        # Signed with our secret, so not an attacker's: logged, and nothing stored.
        logger.error("Signed Stripe webhook refused at endpoint %s: %s", endpoint.id, refusal)
        return _refused(refusal)
    return _djstripe_webhook(request, uuid=uuid)


@csrf_exempt  # Stripe signs its deliveries; it has no CSRF token
@require_POST
def stripe_thin_event(request: HttpRequest) -> HttpResponse:
    try:
        body = _body_within_limit(request)
        notification = thin_event_verify(
            body=body, signature=request.headers.get("Stripe-Signature")
        )
    except DeliveryRefused as refusal:
        return _refused(refusal)
    try:
        thin_event_process(notification=notification)
    except stripe.StripeError:
        # The event could not be fetched: its row stays unprocessed, and a non-2xx answer makes
        # Stripe deliver it again.
        logger.exception("Thin event %s could not be applied", notification.id)
        return HttpResponse("Stripe could not be reached; deliver again.", status=503)
    return HttpResponse(status=200)


def _body_within_limit(request: HttpRequest) -> bytes:
    """The body, unless it is (or says it is) longer than STRIPE_WEBHOOK_MAX_BYTES: checked on
    Content-Length before a byte is read, then on what was read."""
    limit = settings.STRIPE_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit or len(body := request.body) > limit:
        raise DeliveryRefused(
            f"The body is larger than {limit} bytes, more than any Stripe event should be.",
            status=413,
        )
    return body


def _refused(refusal: DeliveryRefused) -> HttpResponse:
    return HttpResponse(refusal.message, status=refusal.status, content_type="text/plain")
