"""What Stripe pushes to the portal, through two doors.

**v1 (snapshot) events** arrive at dj-stripe's ``/stripe/webhook/<uuid>/``. dj-stripe verifies
the signature, stores each event once (a second delivery of the same event id runs no
receiver), and syncs the event's object before the receivers below run; each receiver only
hands the event to billing.services.subscriptions. Receivers run inside dj-stripe's transaction:
if one raises, the event is not stored, the webhook answers 500, and Stripe delivers it again
later. Event types nobody listens to (and ``product.*`` / ``price.*``, which dj-stripe's own
receivers store) are accepted with a 200.

**v2 thin events** (the meter error reports) arrive at ``/stripe/events/`` from our event
destination (``stripe_thin_event``): verified with its secret (400 and nothing stored
otherwise), recorded once, fetched and applied by billing.services.thin_events.
"""

import logging

import stripe
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe.event_handlers import djstripe_receiver
from djstripe.models import Event

from billing.services.subscriptions import ACCOUNT_EVENTS, stripe_event_apply
from billing.services.thin_events import thin_event_process, thin_event_verify

logger = logging.getLogger(__name__)


@djstripe_receiver(ACCOUNT_EVENTS)
def account_billing_event(sender, event: Event, **kwargs) -> None:
    stripe_event_apply(event=event)


@csrf_exempt  # Stripe signs its deliveries; it has no CSRF token
@require_POST
def stripe_thin_event(request: HttpRequest) -> HttpResponse:
    notification = thin_event_verify(
        body=request.body, signature=request.headers.get("Stripe-Signature")
    )
    if notification is None:
        return HttpResponseBadRequest("Not signed by one of this portal's event destinations.")
    try:
        thin_event_process(notification=notification)
    except stripe.StripeError:
        # The event could not be fetched: its row stays unprocessed, and a non-2xx answer makes
        # Stripe deliver it again.
        logger.exception("Thin event %s could not be applied", notification.id)
        return HttpResponse("Stripe could not be reached; deliver again.", status=503)
    return HttpResponse(status=200)
