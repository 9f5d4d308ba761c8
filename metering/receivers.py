"""Metering's answers to other apps' signals (connected in ``MeteringConfig.ready``)."""

import logging

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from metering.limiter import get_limiter
from metering.limiter.base import LimiterUnavailable
from portal.models import Account
from portal.signals import account_changed

logger = logging.getLogger(__name__)


@receiver(account_changed, dispatch_uid="metering.receivers.publish_account_version")
def _publish_on_commit(sender: object, *, account_id: int, **kwargs: object) -> None:
    # After commit, so that a process told of the change reads the changed rows.
    transaction.on_commit(lambda: account_version_publish(account_id))


def account_version_publish(account_id: int) -> None:
    """Tell the limiter's Redis an account's new version: the script compares it with the
    caller's principal in the round trip every request makes, and answers *stale* when older."""
    version = Account.objects.filter(pk=account_id).values_list("cache_version", flat=True).first()
    if version is None:
        return
    ttl = settings.API_KEY_CACHE_SECONDS
    try:
        # Kept a little longer than any process keeps a cached principal.
        get_limiter().publish_version(account_id, version, ttl=2 * ttl + 60)
    except LimiterUnavailable as exc:
        logger.warning(
            "Could not publish account %s's change to other processes (they see it within "
            "%s s): %s",
            account_id,
            ttl,
            exc,
        )
