"""What portal tells other parts of the project without importing them.

``account_changed`` is sent (with ``account_id``) after anything the API must notice: a key
revoked, rolled or its expiry edited, a tier change, a suspension or reinstatement, a quota
credit. Receivers: the key cache (``portal.keys.cache``: this process forgets the account) and
metering (``metering.receivers``: the new version is published to the limiter's Redis, so every
other process re-reads the account on its next request).

``account_owner_changed`` is sent (with ``account_id``), once the change has committed, when an
organisation's primary owner changes (a transfer; the primary owner leaving or stepping down).
Receiver: billing (``billing.receivers``), which gives the Stripe customer the new owner's email.
"""

from django.db import transaction
from django.db.models import F
from django.dispatch import Signal

from portal.models import Account

account_changed = Signal()
account_owner_changed = Signal()


def account_changed_send(account_id: int) -> None:
    """Make every process re-read an account's keys, tier and status.

    Bumps ``Account.cache_version`` (the API's principals carry the version they were read at)
    and sends ``account_changed``. If the other processes cannot be told (no shared Redis, or it
    is down), they re-read within ``API_KEY_CACHE_SECONDS`` anyway.
    """
    Account.objects.filter(pk=account_id).update(cache_version=F("cache_version") + 1)
    account_changed.send(sender=Account, account_id=account_id)


def account_owner_changed_send(account_id: int) -> None:
    """Tell the receivers, once the transaction that changed the primary owner commits (none
    is told of a change rolled back)."""
    transaction.on_commit(lambda: account_owner_changed.send(sender=Account, account_id=account_id))
