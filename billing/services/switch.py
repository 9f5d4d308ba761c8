"""Switching a running subscription to another paid tier so that each price bills exactly the
usage of its own stretch of the period.

What Stripe does (flexible billing mode, the default for subscriptions created through the API):
removing a metered price from a subscription bills, on an invoice item, the usage *reported so
far*; the new price bills only usage that *occurs after the update* ("Manage your usage-based
billing setup: Update prices mid-cycle",
https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup). Usage of the
old stretch reported after the update is billed by neither price, and our reports are hourly.

So a switch is asked for, then applied:

1. **Asked for** (``tier_switch_request``): the split is the next whole minute, ``effective_at``.
   Every unit counted in a minute before it belongs to the old tier; from it on, to the new one.
   The developer sees when, and at which price each stretch is billed.
2. **Applied** (``tier_switch_apply``, from the every-minute job once ``effective_at`` is
   ``ROLLUP_GRACE_SECONDS`` + a margin past, so no request can still settle into an earlier
   minute): the limiter's minutes are rolled up, the account's usage before ``effective_at`` is
   reported and confirmed by Stripe, and only then are the subscription's two items moved to the
   new tier's prices. If Stripe cannot take the usage, nothing is switched and the job tries
   again a minute later. Usage from ``effective_at`` on is reported afterwards, with event
   timestamps after the update (``MeterReport.not_before``), so it lands on the new price.
"""

import logging
from datetime import datetime, timedelta

import stripe
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from stripe.params import SubscriptionUpdateParams

from billing.models import MeterReport, Tier, TierSwitch
from billing.services.errors import BillingError
from billing.services.plan_changes import plan_change_record
from billing.services.reports import usage_report_account
from billing.services.subscriptions import account_subscription_apply
from billing.stripe_api import as_dict, stripe_client
from metering.services import ROLLUP_GRACE_SECONDS, usage_rollup
from portal.audit import audit_record
from portal.models import Account, AuditEntry
from portal.services import AccountActionError, account_period_begin
from portal.signals import account_changed_send

logger = logging.getLogger(__name__)

# Past the rollup's grace, so the minute before the split is final when it is reported.
SWITCH_MARGIN = timedelta(seconds=10)
# A switch must be applied well inside the period it splits: a period ending sooner than this
# after the split is renewed first (the developer switches after it).
PERIOD_END_MARGIN = timedelta(minutes=15)
# Accounts whose subscription can be switched: paid up (a past-due one is settled first).
SWITCHABLE = (Account.PaymentStatus.ACTIVE, Account.PaymentStatus.TRIALING)


def _next_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def tier_switch_ready_at(effective_at: datetime) -> datetime:
    """When a switch splitting at ``effective_at`` can be applied: its last old minute is final."""
    return effective_at + timedelta(seconds=ROLLUP_GRACE_SECONDS) + SWITCH_MARGIN


@transaction.atomic
def tier_switch_request(*, account: Account, tier: Tier, now: datetime | None = None) -> TierSwitch:
    """Ask for the account's subscription to move to ``tier`` from the next whole minute.

    Raises ``BillingError`` (worded for the developer) when it cannot be done now.
    """
    now = now or timezone.now()
    # of=self: PostgreSQL refuses to lock the nullable side of an outer join.
    account = (
        Account.objects.select_for_update(of=("self",))
        .select_related("subscribed_tier")
        .get(pk=account.pk)
    )
    if account.payment_status not in SWITCHABLE or not account.stripe_subscription_id:
        raise BillingError("Only a paid-up subscription can switch plans; subscribe first.")
    if account.cancel_at_period_end:
        raise BillingError(
            "Your subscription is set to end; keep it in Manage billing before switching plans."
        )
    if tier.pk == account.subscribed_tier_id:
        raise BillingError(f"You are already subscribed to {tier.name}.")
    if not (tier.is_public and tier.is_paid and tier.stripe_base_price_id):
        raise BillingError(f"{tier.name} cannot be subscribed to.")
    if tier.stripe_metered_price_id is None:
        raise BillingError(f"{tier.name} is not ready for sale yet; please try again later.")
    effective_at = _next_minute(now)
    # A switch asked in the second before a whole-minute paid period begins for the account
    # falls in the new period, not at the end of the one before.
    _, period_end = account.present_period(now)
    if period_end - tier_switch_ready_at(effective_at) < PERIOD_END_MARGIN:
        raise BillingError(
            f"Your period renews at {period_end:%H:%M} UTC; switch plans once it has renewed."
        )
    try:
        with transaction.atomic():
            return TierSwitch.objects.create(
                account=account,
                from_tier=account.subscribed_tier,
                to_tier=tier,
                stripe_subscription_id=account.stripe_subscription_id,
                effective_at=effective_at,
            )
    except IntegrityError:
        pending = TierSwitch.objects.filter(
            account=account, status=TierSwitch.Status.SCHEDULED
        ).first()
        to_tier = pending.to_tier if pending is not None else None
        what = f"A switch to {to_tier.name}" if to_tier is not None else "A change of plan"
        raise BillingError(f"{what} is already on its way.") from None


@transaction.atomic
def subscription_cancel_now(
    *, account: Account, actor: User | None, reason: str = "", now: datetime | None = None
) -> AuditEntry | None:
    """An operator ends the account's subscription at once: billing stops at the next whole
    minute, whose usage before it is reported before Stripe cancels the subscription with a
    final invoice (``invoice_now``). From that minute on the account is on the default tier's
    terms. None: it has no subscription to cancel."""
    now = now or timezone.now()
    account = Account.objects.select_for_update(of=("self",)).get(pk=account.pk)
    ended = (Account.PaymentStatus.NONE, Account.PaymentStatus.CANCELED)
    if not account.stripe_subscription_id or account.payment_status in ended:
        return None
    effective_at = _next_minute(now)
    try:
        with transaction.atomic():
            switch = TierSwitch.objects.create(
                account=account,
                from_tier=account.subscribed_tier,
                to_tier=None,
                stripe_subscription_id=account.stripe_subscription_id,
                effective_at=effective_at,
            )
    except IntegrityError:
        raise AccountActionError(
            f"{account.owner.email} already has a tier switch on its way; cancel after it."
        ) from None
    return audit_record(
        actor=actor,
        action="account.subscription_cancel",
        account=account,
        before={"stripe_subscription_id": account.stripe_subscription_id},
        after={"billing_ends_at": effective_at.isoformat(), "tier_switch": switch.pk},
        reason=reason.strip(),
    )


def tier_switches_due(*, now: datetime | None = None) -> list[int]:
    """Ids of the scheduled switches whose old stretch is final, oldest first."""
    now = now or timezone.now()
    ready_before = now - timedelta(seconds=ROLLUP_GRACE_SECONDS) - SWITCH_MARGIN
    return list(
        TierSwitch.objects.filter(
            status=TierSwitch.Status.SCHEDULED, effective_at__lte=ready_before
        )
        .order_by("effective_at")
        .values_list("pk", flat=True)
    )


def tier_switch_apply(
    *, switch_id: int, now: datetime | None = None, client: stripe.StripeClient | None = None
) -> TierSwitch:
    """Report the old stretch, then move the subscription's items to the new tier's prices.

    Safe to run again: an applied switch is left alone; a Stripe update that may have landed is
    repeated under the same idempotency key. Returns the switch as it now stands.
    """
    now = now or timezone.now()
    client = client or stripe_client()
    switch = TierSwitch.objects.select_related(
        "account", "to_tier__stripe_base_price", "to_tier__stripe_metered_price"
    ).get(pk=switch_id)
    if switch.status != TierSwitch.Status.SCHEDULED:
        return switch
    if now < tier_switch_ready_at(switch.effective_at):
        return switch
    account = switch.account
    if account.stripe_subscription_id != switch.stripe_subscription_id:
        return _switch_mark(switch, TierSwitch.Status.CANCELED, "The subscription changed since.")

    usage_rollup(now=now)
    usage_report_account(account_id=account.pk, now=now, until=switch.effective_at, client=client)
    unconfirmed = MeterReport.objects.filter(
        account=account, window_start__lt=switch.effective_at
    ).exclude(status=MeterReport.Status.SENT)
    if unconfirmed.exists():
        # Switching now would leave this usage to neither price: wait for Stripe to take it.
        return _switch_note(switch, "Usage before the switch is not confirmed by Stripe yet.")

    try:
        subscription = _subscription_move(client, switch)
    except stripe.StripeError as exc:
        logger.warning("Tier switch %s: %s", switch.pk, exc)
        return _switch_note(switch, f"Stripe: {exc.user_message or exc}")
    applied_at = max(now, timezone.now())  # the update has returned by now
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        changes = account_subscription_apply(
            account=locked, subscription=subscription, now=applied_at
        )
        # The developer asked for a switch on the pricing page; a cancellation is an
        # operator's, whose own entry (account.subscription_cancel) names them.
        plan_change_record(
            account=locked,
            changes=changes,
            cause=(
                f"Tier switch #{switch.pk} asked for on the pricing page, "
                f"from {switch.effective_at:%Y-%m-%d %H:%M} UTC"
                if switch.to_tier is not None
                else f"Cancellation by an operator (tier switch #{switch.pk}), "
                f"from {switch.effective_at:%Y-%m-%d %H:%M} UTC"
            ),
            by_customer=switch.to_tier is not None,
        )
        # The period starts again at the switch minute: after a cancellation, the default
        # tier's period (billing ended there: nothing after it is reported); after a switch, the
        # new tier's segment of the billing period, which Stripe prices with its own included
        # units, so the quota, alerts and usage pages count from there.
        Account.objects.filter(pk=locked.pk).update(period_start=switch.effective_at)
        if switch.to_tier is None:
            # Billing ended: the free tier's monthly periods begin at the switch minute. A
            # switch to another paid tier goes on in the same billing period: no new one.
            locked.period_start = switch.effective_at
            account_period_begin(account=locked)
        account_changed_send(locked.pk)
        TierSwitch.objects.filter(pk=switch.pk).update(
            status=TierSwitch.Status.APPLIED, applied_at=applied_at, last_error=""
        )
    switch.refresh_from_db()
    logger.info(
        "Tier switch %s applied: account %s is on %s", switch.pk, account.pk, switch.to_tier
    )
    return switch


def _subscription_move(client: stripe.StripeClient, switch: TierSwitch) -> dict:
    if switch.to_tier is None:
        return _subscription_cancel(client, switch)
    return _subscription_reprice(client, switch, switch.to_tier)


def _subscription_cancel(client: stripe.StripeClient, switch: TierSwitch) -> dict:
    """Cancel at once with a final invoice for the usage reported so far ("Cancel a
    subscription": ``invoice_now`` "will generate a final invoice that invoices for any
    un-invoiced metered usage", https://docs.stripe.com/api/subscriptions/cancel); metered usage
    reported after a cancellation is discarded, which is why it is reported first."""
    subscription = client.v1.subscriptions.retrieve(switch.stripe_subscription_id)
    if subscription.status in ("canceled", "incomplete_expired"):
        return as_dict(subscription)
    canceled = client.v1.subscriptions.cancel(
        switch.stripe_subscription_id,
        params={"invoice_now": True},
        options={"idempotency_key": f"mdk-tier-switch-{switch.pk}-{switch.attempts}"},
    )
    return as_dict(canceled)


def _subscription_reprice(client: stripe.StripeClient, switch: TierSwitch, tier: Tier) -> dict:
    """Point the subscription's base item at the new base price and its metered item at the new
    metered price. ``create_prorations``: the old metered price's usage so far is billed on the
    next invoice, and the base price is prorated (Stripe: "Prorations")."""
    prices = {
        metered: price.id
        for metered, price in ((True, tier.stripe_metered_price), (False, tier.stripe_base_price))
        if price is not None
    }
    subscription = client.v1.subscriptions.retrieve(switch.stripe_subscription_id)
    items: list[dict] = []
    for item in subscription["items"].data:
        recurring = item.price.recurring
        price = prices.get(recurring is not None and recurring.usage_type == "metered")
        if price and item.price.id != price:
            items.append({"id": item.id, "price": price})
    if not items:
        return as_dict(subscription)
    params: SubscriptionUpdateParams = {
        "items": items,  # type: ignore[typeddict-item]  # built above from Stripe's own items
        "proration_behavior": "create_prorations",
    }
    updated = client.v1.subscriptions.update(
        switch.stripe_subscription_id,
        params=params,
        options={"idempotency_key": f"mdk-tier-switch-{switch.pk}-{switch.attempts}"},
    )
    return as_dict(updated)


def _switch_note(switch: TierSwitch, error: str) -> TierSwitch:
    """Still scheduled: the next run tries again (a new idempotency key for a new attempt)."""
    TierSwitch.objects.filter(pk=switch.pk).update(
        last_error=error[:2000], attempts=switch.attempts + 1
    )
    switch.refresh_from_db()
    return switch


def _switch_mark(switch: TierSwitch, status: str, error: str) -> TierSwitch:
    TierSwitch.objects.filter(pk=switch.pk).update(status=status, last_error=error[:2000])
    switch.refresh_from_db()
    return switch


def tier_switches_apply(*, now: datetime | None = None) -> list[TierSwitch]:
    """The every-minute job: apply each switch that is due."""
    return [tier_switch_apply(switch_id=pk, now=now) for pk in tier_switches_due(now=now)]
