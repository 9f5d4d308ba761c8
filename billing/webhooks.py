"""Stripe webhook receivers. dj-stripe verifies the signature, stores each event once (a second
delivery of the same event id runs no receiver), and syncs the event's object before these run;
each receiver only hands the event to billing.services.subscriptions.

Receivers run inside dj-stripe's transaction: if one raises, the event is not stored, the
webhook answers 500, and Stripe delivers it again later. Event types nobody listens to (and
``product.*`` / ``price.*``, which dj-stripe's own receivers store) are accepted with a 200.
"""

from djstripe.event_handlers import djstripe_receiver
from djstripe.models import Event

from billing.services.subscriptions import ACCOUNT_EVENTS, stripe_event_apply


@djstripe_receiver(ACCOUNT_EVENTS)
def account_billing_event(sender, event: Event, **kwargs) -> None:
    stripe_event_apply(event=event)
