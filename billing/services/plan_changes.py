"""What a customer buys, changed from Stripe's side, written to the audit log.

Operators' actions are audited by the services that make them (``portal.audit``). An account's
tier also changes without an operator: the developer subscribes through Checkout or switches
tier on the pricing page, a payment fails past its grace, a subscription set to end in the
customer portal ends. Each of those reaches the account through ``account_subscription_apply``
(a webhook, or the answer to our own tier switch); its callers hand the changes here, and one
entry says who asked (the account's owner, or nobody: Stripe), what changed from what to what,
and why (the event or the switch).

Only changes of what is bought are written (the tier, the subscribed tier, a cancellation at the
period's end): a renewal moves the period every month and is no news for the log.
"""

from typing import Any

from djstripe.models import Event

from billing.models import Tier, TierSwitch
from billing.subscriptions import SubscriptionState
from portal.audit import audit_record, audit_value
from portal.models import Account, AuditEntry

# The billing-state fields (``billing.services.subscriptions.BILLING_STATE_FIELDS``, by
# attname) whose change is a change of plan, and the audit entry's name for each.
PLAN_FIELDS = {
    "tier_id": "tier",
    "subscribed_tier_id": "subscribed_tier",
    "cancel_at_period_end": "cancel_at_period_end",
}
# Shown beside a change of plan, so the entry reads whole: the payment state it came with.
CONTEXT_FIELDS = {"payment_status": "payment_status", "stripe_subscription_id": "subscription"}

ACTION = "billing.plan_change"


def plan_change_record(
    *,
    account: Account,
    changes: dict[str, tuple[Any, Any]],
    cause: str,
    by_customer: bool,
) -> AuditEntry | None:
    """One audit entry for ``changes`` (``account_subscription_apply``'s answer) when they
    change the account's plan; None when they do not. ``by_customer``: the account's owner
    asked for it (Checkout, the tier switch), and is recorded as the actor; otherwise the
    actor is the system (Stripe decided, e.g. a failed payment's grace ran out). Call it in the
    transaction that saved the changes."""
    if not PLAN_FIELDS.keys() & changes.keys():
        return None
    shown = {**PLAN_FIELDS, **CONTEXT_FIELDS}
    tier_ids = {
        value
        for attname in ("tier_id", "subscribed_tier_id")
        if attname in changes
        for value in changes[attname]
        if value is not None
    }
    slugs = dict(Tier.objects.filter(pk__in=tier_ids).values_list("pk", "slug"))

    def kept(attname: str, value: Any) -> Any:
        if attname in ("tier_id", "subscribed_tier_id") and value is not None:
            return slugs.get(value, value)
        return audit_value(value)

    before, after = {}, {}
    for attname, (old, new) in changes.items():
        if attname in shown:
            before[shown[attname]] = kept(attname, old)
            after[shown[attname]] = kept(attname, new)
    return audit_record(
        actor=account.owner if by_customer else None,
        action=ACTION,
        account=account,
        before=before,
        after=after,
        reason=cause,
    )


def plan_change_from_stripe(
    *,
    account: Account,
    state: SubscriptionState,
    previous_subscription_id: str,
    changes: dict[str, tuple[Any, Any]],
    event: Event,
) -> AuditEntry | None:
    """Record what a Stripe event changed of the account's plan (``stripe_event_apply``).

    The owner asked for it when the subscription now paid for is one Meterdesk's Checkout made
    for this account (its metadata names the account) and it is new to the account (they just
    subscribed), or it moved to a tier they asked to switch to on the pricing page (a
    ``TierSwitch`` to it; its event can arrive before the switch's own answer is applied).
    Anything else Stripe decided: a payment's grace, a cancellation taking effect, a change
    made in Stripe's dashboard."""
    subscribed = changes.get("subscribed_tier_id", (None, None))[1]
    ours = state.account_id == account.pk and subscribed is not None
    new = previous_subscription_id != state.id
    by_customer = ours and (
        new
        or TierSwitch.objects.filter(
            account=account, stripe_subscription_id=state.id, to_tier_id=subscribed
        ).exists()
    )
    how = "subscribed through Checkout; " if by_customer and new else ""
    return plan_change_record(
        account=account,
        changes=changes,
        cause=f"Stripe {event.type} ({event.id}): {how}subscription {state.id} is {state.status}",
        by_customer=by_customer,
    )
