"""The end of the grace period: an account whose payment is still due, or whose subscription
was set to cancel at a period end that has passed, goes to the default tier."""

from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from billing.emails import grace_expired_email_send
from billing.selectors import tier_default
from billing.services.subscriptions import billing_state, billing_state_save
from portal.models import Account


def account_enforce_grace(*, now: datetime | None = None) -> list[int]:
    """Move to the default tier every account whose grace period is over, and every account
    whose subscription was set to cancel at a period end that has passed (in case Stripe's
    ``customer.subscription.deleted`` is late or lost). ``subscribed_tier`` is kept, so a paid
    invoice restores the account by itself. Returns the ids of the accounts moved."""
    now = now or timezone.now()
    default = tier_default()
    due = Account.objects.exclude(tier=default).filter(
        payment_status__in=[Account.PaymentStatus.PAST_DUE, Account.PaymentStatus.UNPAID],
        grace_until__lte=now,
    )
    lapsed = Account.objects.exclude(tier=default).filter(
        cancel_at_period_end=True, period_end__lte=now
    )
    moved = []
    for account_id in sorted(
        set(due.values_list("pk", flat=True)) | set(lapsed.values_list("pk", flat=True))
    ):
        with transaction.atomic():
            account = Account.objects.select_for_update().get(pk=account_id)
            before = billing_state(account)
            account.tier = default
            if billing_state_save(account=account, before=before):
                moved.append(account.pk)
                if account.payment_status in (
                    Account.PaymentStatus.PAST_DUE,
                    Account.PaymentStatus.UNPAID,
                ):
                    # Queued once the change is committed, never for a rolled-back one.
                    transaction.on_commit(partial(grace_expired_email_send.delay, account.pk))
    return moved
