"""Subscription → account: the account's billing state kept in step with its Stripe
subscription, and what each Stripe event means for it (billing.webhooks hands them over)."""

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal, get_args

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djstripe.models import Customer, Event, Subscription

from billing.emails import payment_failed_email_send
from billing.selectors import account_for_stripe_customer, tier_default, tier_for_subscription
from billing.services.plan_changes import plan_change_from_stripe
from billing.stripe_api import as_dict, expandable_id, is_missing, stripe_client
from billing.subscriptions import (
    ENDED,
    PAYING,
    PAYMENT_DUE,
    SubscriptionState,
    invoice_subscription_id,
)
from portal.models import Account
from portal.services import account_period_begin
from portal.signals import account_changed_send

logger = logging.getLogger(__name__)

# The events that change an account (billing.webhooks hands them to stripe_event_apply). A
# Literal, as the SDK's params name Stripe's events, so a misspelt one is a type error.
AccountEvent = Literal[
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
]
ACCOUNT_EVENTS: list[AccountEvent] = list(get_args(AccountEvent))

# Stripe's subscription statuses as the account records them.
_PAYMENT_STATUS = {
    "active": Account.PaymentStatus.ACTIVE,
    "trialing": Account.PaymentStatus.TRIALING,
    "past_due": Account.PaymentStatus.PAST_DUE,
    "unpaid": Account.PaymentStatus.UNPAID,
    "incomplete": Account.PaymentStatus.INCOMPLETE,
    # A paused subscription bills nothing, so it buys nothing either.
    "paused": Account.PaymentStatus.CANCELED,
    "canceled": Account.PaymentStatus.CANCELED,
    "incomplete_expired": Account.PaymentStatus.CANCELED,
}

# An account's billing state: the fields its Stripe subscription decides. The webhooks, the
# grace job and the reconcile write them; an operator's re-sync shows them in the audit log.
BILLING_STATE_FIELDS = [
    "tier",
    "subscribed_tier",
    "payment_status",
    "stripe_subscription_id",
    "cancel_at_period_end",
    "grace_until",
    "period_start",
    "period_end",
]
# Each field as compared: a tier by its id (``tier_id``), so no tier row is fetched for it.
_ATTNAMES = {
    name: next(field.attname for field in Account._meta.concrete_fields if field.name == name)
    for name in BILLING_STATE_FIELDS
}


def billing_state(account: Account) -> dict[str, Any]:
    """The account's billing state, ``{attname: value}``, to hand to ``billing_state_save``
    once it was changed."""
    return {attname: getattr(account, attname) for attname in _ATTNAMES.values()}


def billing_state_save(*, account: Account, before: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Save the billing fields that differ from ``before`` (a ``billing_state``); returns
    them, ``{attname: (before, after)}``."""
    changes = {
        attname: (before[attname], getattr(account, attname))
        for attname in _ATTNAMES.values()
        if before[attname] != getattr(account, attname)
    }
    if changes:
        account.save(
            update_fields=[name for name, attname in _ATTNAMES.items() if attname in changes]
        )
        if {"period_start", "period_end"} & changes.keys():
            # A new billing period began (a segment of one never comes through here: a tier
            # switch moves only the quota's start, billing.services.switch).
            account_period_begin(account=account)
        # The API's cached principal carries the tier, quota and period: drop it everywhere.
        account_changed_send(account.pk)
    return changes


def account_subscription_apply(
    *, account: Account, subscription: dict[str, Any], now: datetime | None = None
) -> dict[str, tuple[Any, Any]]:
    """Bring the account in line with a subscription's current state on Stripe.

    - active / trialing: on the subscribed tier, no grace.
    - past_due / unpaid: keeps the subscribed tier until ``grace_until`` (set once, when the
      payment first fails, and the owner is emailed then), the default tier after it; the
      subscribed tier is remembered, so a paid invoice brings it back by itself.
    - canceled (and expired, paused): the default tier. Cancel-at-period-end keeps the tier:
      the subscription is still active until Stripe ends it.
    - incomplete: the first payment is not through yet; nothing changes but the status.

    While the account follows a live subscription, another one that has not started (or has
    ended) is ignored: an old subscription's late ``deleted`` event does not downgrade it.
    Returns the fields that changed, ``{name: (before, after)}``.
    """
    now = now or timezone.now()
    state = SubscriptionState.from_stripe(subscription)
    is_current = account.stripe_subscription_id in ("", state.id)
    current_is_live = account.payment_status not in (
        Account.PaymentStatus.NONE,
        Account.PaymentStatus.CANCELED,
    )
    if not is_current and current_is_live and state.status not in PAYING | PAYMENT_DUE:
        logger.info(
            "Ignoring %s (%s): account %s is on another subscription",
            state.id,
            state.status,
            account.pk,
        )
        return {}

    before = billing_state(account)
    paid_tier = tier_for_subscription(state)
    if paid_tier is None and state.status not in ENDED:
        logger.error(
            "Subscription %s sells no known tier (products %s); tier left as is",
            state.id,
            state.product_ids,
        )
    account.stripe_subscription_id = state.id
    account.payment_status = _PAYMENT_STATUS.get(state.status, Account.PaymentStatus.INCOMPLETE)
    account.cancel_at_period_end = state.cancel_at_period_end and state.status not in ENDED

    if state.status in ENDED:
        account.tier = tier_default()
        account.subscribed_tier = None
        account.grace_until = None
        if account.period_end is not None:
            # Back to monthly quota periods, anchored when the paid period stopped (once: a
            # second look at the same ended subscription leaves the period alone): when Stripe
            # ended the subscription (``ended_at``, see SubscriptionState), however late the
            # webhook or the reconcile gets to it. Without one (a paused subscription has not
            # ended on Stripe), the end of the paid period, or now if that is still ahead.
            account.period_start = state.ended_at or min(now, state.period_end or now)
            account.period_end = None
    else:
        if state.status in PAYING | PAYMENT_DUE and state.period_start and state.period_end:
            # A tier switch starts a segment of the same billing period (period_start moves to
            # the switch minute, billing.services.switch): Stripe prices each segment with its
            # own included units, so quota counts from there until the period renews.
            in_segment = (
                account.period_end == state.period_end
                and state.period_start <= account.period_start < state.period_end
            )
            if not in_segment:
                account.period_start, account.period_end = state.period_start, state.period_end
                if before["period_end"] is None and state.period_start.second == 0:
                    # Coming from the free tier onto a start Stripe dated on a whole minute:
                    # Stripe keeps whole seconds, so free calls made in that second, before the
                    # upgrade, would share the first paid minute (usage is counted per minute,
                    # from the period's start rounded up). One second later rounds up to the
                    # next minute: that minute's usage stays free, none is billed twice.
                    account.period_start = state.period_start + timedelta(seconds=1)
        if paid_tier is not None and state.status in PAYING | PAYMENT_DUE:
            account.subscribed_tier = paid_tier
        if state.status in PAYING:
            account.grace_until = None
            if paid_tier is not None:
                account.tier = paid_tier
        elif state.status in PAYMENT_DUE:
            grace_started = account.grace_until is None
            if account.grace_until is None:
                account.grace_until = now + timedelta(days=settings.BILLING_GRACE_DAYS)
            if account.grace_until > now and account.subscribed_tier is not None:
                account.tier = account.subscribed_tier
            else:
                account.tier = tier_default()
            if grace_started:
                # Queued once the change is committed, never for a rolled-back one.
                transaction.on_commit(partial(payment_failed_email_send.delay, account.pk))

    return billing_state_save(account=account, before=before)


def _subscription_fetch(subscription_id: str) -> dict[str, Any] | None:
    """The subscription as Stripe has it now, stored through dj-stripe on the way. None: Stripe
    does not know it ("404 Not Found: The requested resource doesn't exist", Errors,
    https://docs.stripe.com/api/errors; code ``resource_missing``). Any other failure raises,
    so the webhook answers 500 and Stripe delivers the event again later."""
    try:
        subscription = stripe_client().v1.subscriptions.retrieve(subscription_id)
    except stripe.InvalidRequestError as error:
        if is_missing(error):
            return None
        raise
    # dj-stripe pages through the items of the SDK object itself, so it gets the object.
    Subscription.sync_from_stripe_data(subscription)
    return as_dict(subscription)


def _account_for(state: SubscriptionState, fallback_id: str | int | None = None) -> Account | None:
    account = account_for_stripe_customer(state.customer_id)
    if account is None:
        fallback = str(fallback_id or "")
        account_id = state.account_id or (int(fallback) if fallback.isdigit() else None)
        account = Account.objects.filter(pk=account_id).first() if account_id else None
    return account


def _apply_locked(
    state: SubscriptionState, data: dict, event: Event, fallback_id: Any = None
) -> None:
    account = _account_for(state, fallback_id)
    if account is None:
        logger.warning(
            "Subscription %s (customer %s) belongs to no account; ignored",
            state.id,
            state.customer_id,
        )
        return
    with transaction.atomic():
        # Webhooks for one account may be processed at once (Stripe sends them in parallel).
        account = Account.objects.select_for_update().get(pk=account.pk)
        if account.stripe_customer is None and state.customer_id:
            account.stripe_customer = Customer.objects.filter(id=state.customer_id).first()
            if account.stripe_customer is not None:
                account.save(update_fields=["stripe_customer"])
        previous_subscription_id = account.stripe_subscription_id
        changes = account_subscription_apply(account=account, subscription=data)
        # A plan the customer chose (Checkout, a tier switch) or Stripe changed: in the audit log.
        plan_change_from_stripe(
            account=account,
            state=state,
            previous_subscription_id=previous_subscription_id,
            changes=changes,
            event=event,
        )


def stripe_event_apply(*, event: Event) -> None:
    """What one Stripe event means for an account. Called by the webhook receivers after
    dj-stripe stored the event (once per event id) and synced its object.

    The account follows the subscription as Stripe has it, never the event payload: the
    signature proves the event came from Stripe, not that it is the current state (events
    arrive late, out of order, or name a subscription Stripe no longer has). An event about a
    subscription Stripe does not know changes nothing and is accepted, so that Stripe does not
    deliver it again for days.
    """
    obj = event.data.get("object") or {}
    fallback_id = None
    if event.type == "checkout.session.completed":
        if obj.get("mode") != "subscription":
            return
        subscription_id = expandable_id(obj.get("subscription"))
        fallback_id = obj.get("client_reference_id")
    elif event.type.startswith("customer.subscription."):
        subscription_id = obj.get("id")
    elif event.type in ("invoice.paid", "invoice.payment_failed"):
        subscription_id = invoice_subscription_id(obj)
    else:
        return
    if not subscription_id:
        return

    data = None
    if event.type.startswith("customer.subscription."):
        # dj-stripe's own receiver ran first and re-fetched the subscription from Stripe, so its
        # row, when there is one, is Stripe's word. None: Stripe did not answer with one.
        row = Subscription.objects.filter(id=subscription_id).first()
        data = row.stripe_data if row is not None else None
    if data is None:
        data = _subscription_fetch(subscription_id)
    if data is None:
        logger.warning(
            "Ignoring %s (%s): Stripe has no subscription %s",
            event.type,
            event.id,
            subscription_id,
        )
        return
    _apply_locked(SubscriptionState.from_stripe(data), data, event, fallback_id)
