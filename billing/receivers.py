"""Billing's answers to what portal announces (portal.signals), so portal never imports billing."""

from typing import Any

from django.dispatch import receiver

from billing import tasks
from portal.signals import account_owner_changed


@receiver(account_owner_changed, dispatch_uid="billing.receivers.owner_changed")
def _stripe_customer_follows_owner(sender: object, account_id: int, **kwargs: Any) -> None:
    # Sent once the change committed: queue at once.
    tasks.stripe_customer_email_sync.delay(account_id)
