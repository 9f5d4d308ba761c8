"""Writes for billing: tiers pushed to Stripe, Checkout and portal sessions, the account's
billing state kept in step with its subscription, the grace period, the reconcile job and the
webhook endpoint.

Two rules run through this module:

- **Stripe decides, webhooks tell.** An account's tier changes only from what Stripe says about
  its subscription (a webhook, or the reconcile job re-reading it), never from a browser redirect.
  Every event handler re-reads the subscription's current state and applies that, so events that
  arrive late, twice or out of order converge on the same result.
- **No database transaction is held open across a Stripe call.** Calls go out first; the rows
  are written after, in short transactions.
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from djstripe.models import (
    Customer,
    Event,
    Invoice,
    Price,
    Product,
    Subscription,
    WebhookEndpoint,
)

from billing import stripe_specs
from billing.models import Tier
from billing.selectors import account_for_stripe_customer, tier_default, tier_for_subscription
from billing.stripe_api import stripe_client
from billing.subscriptions import ENDED, PAYING, PAYMENT_DUE, SubscriptionState
from billing.subscriptions import invoice_subscription_id as _invoice_subscription_id
from portal.audit import audit_record
from portal.models import Account, AuditEntry
from portal.signals import account_changed_send

logger = logging.getLogger(__name__)

# The events that change an account (billing.webhooks hands them to stripe_event_apply).
ACCOUNT_EVENTS = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
]
# The events the portal's webhook endpoint subscribes to: those, and the ones that keep
# dj-stripe's copies (invoices on the billing page, products, prices) fresh.
WEBHOOK_EVENTS = [
    *ACCOUNT_EVENTS,
    "invoice.created",
    "invoice.finalized",
    "invoice.payment_succeeded",
    "customer.updated",
    "product.created",
    "product.updated",
    "price.created",
    "price.updated",
]


class BillingError(Exception):
    """A billing action that cannot be done; the message is safe to show to the developer."""


def _as_dict(obj: Any) -> dict[str, Any]:
    """A plain dict of a Stripe response (stripe-python 15 objects are no longer dicts)."""
    return obj.to_dict(for_json=True) if hasattr(obj, "to_dict") else dict(obj)


def _is_missing(error: stripe.StripeError) -> bool:
    return (
        getattr(error, "code", None) == "resource_missing"
        or getattr(error, "http_status", None) == 404
    )


# --- Tiers → Stripe -------------------------------------------------------------------------------


@dataclass
class TierSyncResult:
    tier: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.archived)

    def describe(self) -> str:
        if not self.changed:
            return f"{self.tier}: up to date"
        parts = [
            f"{label} {', '.join(ids)}"
            for label, ids in (
                ("created", self.created),
                ("updated", self.updated),
                ("archived", self.archived),
            )
            if ids
        ]
        return f"{self.tier}: {'; '.join(parts)}"


def meter_ensure(*, client: stripe.StripeClient | None = None) -> str:
    """The id of the one billing Meter all tiers report to, found by event name or created.

    Its aggregation and mappings cannot be changed on Stripe once created, so a meter with the
    same event name but another shape is an error for the operator to resolve, not something
    to paper over.
    """
    client = client or stripe_client()
    event_name = settings.STRIPE_METER_EVENT_NAME
    for meter in client.v1.billing.meters.list(
        params={"status": "active", "limit": 100}
    ).auto_paging_iter():
        if meter.event_name != event_name:
            continue
        found = _as_dict(meter)
        if (
            found["default_aggregation"]["formula"] != "sum"
            or found["customer_mapping"]["event_payload_key"] != "stripe_customer_id"
            or found["value_settings"]["event_payload_key"] != "value"
        ):
            raise BillingError(
                f"The Stripe meter {found['id']} for '{event_name}' does not sum 'value' per "
                "'stripe_customer_id'; deactivate it in Stripe or set STRIPE_METER_EVENT_NAME."
            )
        return found["id"]
    meter = client.v1.billing.meters.create(
        params={
            "display_name": stripe_specs.METER_DISPLAY_NAME,
            "event_name": event_name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        },
        options={"idempotency_key": stripe_specs.idempotency_key("meter", event_name)},
    )
    return meter.id


def _product_ensure(client: stripe.StripeClient, tier: Tier, result: TierSyncResult) -> dict:
    candidates = [stripe_specs.product_id(tier)]
    if tier.stripe_product is not None and tier.stripe_product.id not in candidates:
        candidates.insert(0, tier.stripe_product.id)
    for product_id in candidates:
        try:
            product = _as_dict(client.v1.products.retrieve(product_id))
        except stripe.InvalidRequestError as error:
            if _is_missing(error):
                continue
            raise
        changes = stripe_specs.product_changes(tier, product)
        if changes:
            product = _as_dict(client.v1.products.update(product_id, params=changes))
            result.updated.append(product_id)
        return product
    params = {"id": stripe_specs.product_id(tier), **stripe_specs.product_params(tier)}
    if not params["description"]:
        del params["description"]
    product = _as_dict(
        client.v1.products.create(
            params=params,
            options={"idempotency_key": stripe_specs.idempotency_key("product", params)},
        )
    )
    result.created.append(product["id"])
    return product


def _price_current(client: stripe.StripeClient, key: str) -> dict | None:
    prices = client.v1.prices.list(
        params={"lookup_keys": [key], "expand": ["data.tiers"], "limit": 1}
    )
    return _as_dict(prices.data[0]) if prices.data else None


def _price_archive(client: stripe.StripeClient, price_id: str, result: TierSyncResult) -> dict:
    price = _as_dict(
        client.v1.prices.update(price_id, params={"active": False, "expand": ["tiers"]})
    )
    result.archived.append(price_id)
    return price


def _stored_price_archive(
    client: stripe.StripeClient, stored: Price, result: TierSyncResult
) -> None:
    """Archive a price our database links to, on Stripe and in dj-stripe's copy. One Stripe no
    longer knows (another account, a restarted emulator) has nothing left to sell."""
    try:
        Price.sync_from_stripe_data(_price_archive(client, stored.id, result))
    except stripe.InvalidRequestError as error:
        if not _is_missing(error):
            raise


def _price_ensure(
    client: stripe.StripeClient,
    params: dict,
    stored: Price | None,
    result: TierSyncResult,
) -> tuple[dict, list[dict]]:
    """The price matching ``params`` (kept, or created to replace the current one) and the
    prices archived on the way."""
    archived: list[dict] = []
    current = _price_current(client, params["lookup_key"])
    if current is not None and stripe_specs.price_matches(params, current):
        if not current["active"]:
            current = _as_dict(
                client.v1.prices.update(current["id"], params={"active": True, "expand": ["tiers"]})
            )
            result.updated.append(current["id"])
        price = current
    else:
        previous_id = current["id"] if current else None
        price = _as_dict(
            client.v1.prices.create(
                params={**params, "transfer_lookup_key": True, "expand": ["tiers"]},
                options={
                    "idempotency_key": stripe_specs.idempotency_key("price", params, previous_id)
                },
            )
        )
        result.created.append(price["id"])
        if current is not None and current["active"]:
            archived.append(_price_archive(client, current["id"], result))
    # A price our database links to that is no longer the one under the lookup key (the key
    # was moved in the dashboard; a crash between creating a price and saving the link) is
    # archived too, so nobody is sold two prices for one tier.
    done = {price["id"], *(p["id"] for p in archived)}
    if stored is not None and stored.id not in done and stored.active:
        _stored_price_archive(client, stored, result)
    return price, archived


def tier_sync_to_stripe(
    *,
    tier: Tier,
    meter_id: str | None = None,
    actor: AbstractBaseUser | None = None,
    client: stripe.StripeClient | None = None,
) -> TierSyncResult:
    """Push one tier to Stripe: its Product, a licensed monthly base Price and a metered Price
    on the billing meter. Objects that already match are left alone, so a second run makes no
    write at all; a changed amount creates a new Price and archives the old one.

    A free tier (nothing to charge) needs no Stripe objects; if it was paid before, its prices
    are archived so nobody can buy them any more, and the product stays for the subscriptions
    still on it.
    """
    client = client or stripe_client()
    meter_id = meter_id or meter_ensure(client=client)
    result = TierSyncResult(tier=tier.slug)
    before = _tier_stripe_ids(tier)

    if not tier.is_paid:
        for stored in (tier.stripe_base_price, tier.stripe_metered_price):
            if stored is not None and stored.active:
                _stored_price_archive(client, stored, result)
        tier.stripe_base_price = None
        tier.stripe_metered_price = None
    else:
        product = _product_ensure(client, tier, result)
        product_row = Product.sync_from_stripe_data(product)
        base = None
        if tier.base_price_cents > 0:
            base, archived = _price_ensure(
                client,
                stripe_specs.base_price_params(tier, product["id"]),
                tier.stripe_base_price,
                result,
            )
            for price in archived:
                Price.sync_from_stripe_data(price)
        elif tier.stripe_base_price is not None and tier.stripe_base_price.active:
            # Now pay-as-you-go: no monthly fee to sell any more.
            _stored_price_archive(client, tier.stripe_base_price, result)
        metered, archived = _price_ensure(
            client,
            stripe_specs.metered_price_params(tier, product["id"], meter_id),
            tier.stripe_metered_price,
            result,
        )
        for price in archived:
            Price.sync_from_stripe_data(price)
        tier.stripe_product = product_row
        tier.stripe_base_price = Price.sync_from_stripe_data(base) if base else None
        tier.stripe_metered_price = Price.sync_from_stripe_data(metered)

    tier.stripe_meter_id = meter_id
    Tier.objects.filter(pk=tier.pk).update(
        stripe_product=tier.stripe_product,
        stripe_base_price=tier.stripe_base_price,
        stripe_metered_price=tier.stripe_metered_price,
        stripe_meter_id=meter_id,
    )
    after = _tier_stripe_ids(tier)
    if result.changed or before != after:
        audit_record(
            actor=actor,
            action="tier.sync_to_stripe",
            target=tier.slug,
            before=before,
            after=after,
            reason=result.describe(),
        )
    return result


def _tier_stripe_ids(tier: Tier) -> dict[str, str]:
    return {
        "product": tier.stripe_product.id if tier.stripe_product else "",
        "base_price": tier.stripe_base_price.id if tier.stripe_base_price else "",
        "metered_price": tier.stripe_metered_price.id if tier.stripe_metered_price else "",
        "meter": tier.stripe_meter_id,
    }


def tiers_sync_to_stripe(
    *, tiers: list[Tier] | None = None, actor: AbstractBaseUser | None = None
) -> list[TierSyncResult]:
    """Push every tier (or the given ones) to Stripe with one meter lookup."""
    client = stripe_client()
    meter_id = meter_ensure(client=client)
    chosen = (
        tiers
        if tiers is not None
        else list(
            Tier.objects.select_related(
                "stripe_product", "stripe_base_price", "stripe_metered_price"
            )
        )
    )
    return [
        tier_sync_to_stripe(tier=tier, meter_id=meter_id, actor=actor, client=client)
        for tier in chosen
    ]


# --- Customer, Checkout, customer portal ----------------------------------------------------------


def account_stripe_customer_ensure(*, account: Account, replace: bool = False) -> Customer:
    """The account's Stripe customer, created on first need (through dj-stripe, so the user is
    its subscriber). ``replace`` makes a new one when Stripe no longer knows the linked one
    (the emulator restarted; a customer deleted in the dashboard)."""
    if account.stripe_customer is not None and not replace:
        return account.stripe_customer
    replaced = account.stripe_customer.id if account.stripe_customer is not None else ""
    customer = Customer.create(
        account.owner,
        idempotency_key=stripe_specs.idempotency_key("customer", account.pk, replaced),
        livemode=settings.STRIPE_LIVE_MODE,
        metadata={"account_id": str(account.pk)},
    )
    Account.objects.filter(pk=account.pk).update(stripe_customer=customer)
    account.stripe_customer = customer
    return customer


def _site_url(name: str, query: str = "") -> str:
    return f"{settings.SITE_URL}{reverse(name)}{query}"


def checkout_session_create(*, account: Account, tier: Tier) -> str:
    """A Stripe Checkout Session for ``tier``'s base and metered prices; returns its URL.

    Nothing changes on the account here: the tier moves when Stripe's webhook says the
    subscription exists (``checkout.session.completed`` / ``customer.subscription.created``).
    """
    if not tier.is_public or not tier.is_paid:
        raise BillingError(f"{tier.name} cannot be bought online.")
    if tier.stripe_metered_price is None or not tier.stripe_metered_price.active:
        raise BillingError(f"{tier.name} is not on sale yet; please try again later.")
    line_items: list[dict[str, Any]] = []
    if tier.stripe_base_price is not None:
        line_items.append({"price": tier.stripe_base_price.id, "quantity": 1})
    # A metered price takes no quantity: Stripe bills what the meter reports.
    line_items.append({"price": tier.stripe_metered_price.id})
    metadata = {"account_id": str(account.pk), "tier": tier.slug}
    client = stripe_client()

    def create(customer: Customer) -> Any:
        return client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer.id,
                "client_reference_id": str(account.pk),
                "line_items": line_items,
                "metadata": metadata,
                "subscription_data": {"metadata": metadata},
                "success_url": _site_url("billing:overview", "?checkout=success"),
                "cancel_url": _site_url("billing:pricing", "?checkout=cancelled"),
            }
        )

    customer = account_stripe_customer_ensure(account=account)
    try:
        session = create(customer)
    except stripe.InvalidRequestError as error:
        if not (_is_missing(error) and getattr(error, "param", None) == "customer"):
            raise
        session = create(account_stripe_customer_ensure(account=account, replace=True))
    return session.url


def billing_portal_session_create(*, account: Account) -> str:
    """A Stripe customer-portal session (switch tier, card, cancel, invoices); returns its URL."""
    if account.stripe_customer is None:
        raise BillingError("You have no subscription to manage yet.")
    session = stripe_client().v1.billing_portal.sessions.create(
        params={
            "customer": account.stripe_customer.id,
            "return_url": _site_url("billing:overview"),
        }
    )
    return session.url


# --- Subscription → account ----------------------------------------------------------------------

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
_TRACKED_FIELDS = [
    "tier_id",
    "subscribed_tier_id",
    "payment_status",
    "stripe_subscription_id",
    "cancel_at_period_end",
    "grace_until",
    "period_start",
    "period_end",
]


# Attribute names above that differ from the field name update_fields wants.
_FIELD_NAMES = {"tier_id": "tier", "subscribed_tier_id": "subscribed_tier"}


def _snapshot(account: Account) -> dict[str, Any]:
    return {name: getattr(account, name) for name in _TRACKED_FIELDS}


def _changes(before: dict[str, Any], account: Account) -> dict[str, tuple[Any, Any]]:
    return {
        name: (before[name], getattr(account, name))
        for name in _TRACKED_FIELDS
        if before[name] != getattr(account, name)
    }


def _account_save(account: Account, before: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    changes = _changes(before, account)
    if changes:
        account.save(update_fields=[_FIELD_NAMES.get(name, name) for name in changes])
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

    before = _snapshot(account)
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
            # second look at the same ended subscription leaves the period alone).
            account.period_start = min(now, state.period_end or now)
            account.period_end = None
    else:
        if state.status in PAYING | PAYMENT_DUE and state.period_start and state.period_end:
            account.period_start, account.period_end = state.period_start, state.period_end
        if paid_tier is not None and state.status in PAYING | PAYMENT_DUE:
            account.subscribed_tier = paid_tier
        if state.status in PAYING:
            account.grace_until = None
            if paid_tier is not None:
                account.tier = paid_tier
        elif state.status in PAYMENT_DUE:
            grace_started = account.grace_until is None
            if grace_started:
                account.grace_until = now + timedelta(days=settings.BILLING_GRACE_DAYS)
            if account.grace_until > now and account.subscribed_tier is not None:
                account.tier = account.subscribed_tier
            else:
                account.tier = tier_default()
            if grace_started:
                _notify_on_commit("payment_failed_email_send", account)

    return _account_save(account, before)


def _notify_on_commit(task_name: str, account: Account) -> None:
    """Queue an email task once the change is committed (never for a rolled-back one)."""
    from billing import tasks  # tasks import this module

    task = getattr(tasks, task_name)
    transaction.on_commit(lambda: task.delay(account.pk))


def _subscription_fetch(subscription_id: str) -> dict[str, Any]:
    """The subscription as Stripe has it now, stored through dj-stripe on the way."""
    subscription = stripe_client().v1.subscriptions.retrieve(subscription_id)
    # dj-stripe pages through the items of the SDK object itself, so it gets the object.
    Subscription.sync_from_stripe_data(subscription)
    return _as_dict(subscription)


def _account_for(state: SubscriptionState, fallback_id: str | int | None = None) -> Account | None:
    account = account_for_stripe_customer(state.customer_id)
    if account is None:
        account_id = state.account_id or (
            int(fallback_id) if str(fallback_id or "").isdigit() else None
        )
        account = Account.objects.filter(pk=account_id).first() if account_id else None
    return account


def _apply_locked(state: SubscriptionState, data: dict, fallback_id: Any = None) -> None:
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
        account_subscription_apply(account=account, subscription=data)


def stripe_event_apply(*, event: Event) -> None:
    """What one Stripe event means for an account. Called by the webhook receivers after
    dj-stripe stored the event (once per event id) and synced its object."""
    obj = event.data.get("object") or {}
    if event.type == "checkout.session.completed":
        if obj.get("mode") != "subscription" or not obj.get("subscription"):
            return
        subscription_id = obj["subscription"]
        subscription_id = (
            subscription_id.get("id") if isinstance(subscription_id, dict) else subscription_id
        )
        data = _subscription_fetch(subscription_id)
        _apply_locked(SubscriptionState.from_stripe(data), data, obj.get("client_reference_id"))
    elif event.type.startswith("customer.subscription."):
        # dj-stripe's own receiver ran first and re-fetched the subscription from Stripe, so its
        # row is fresher than the event payload.
        row = Subscription.objects.filter(id=obj.get("id")).first()
        data = row.stripe_data if row is not None else obj
        _apply_locked(SubscriptionState.from_stripe(data), data)
    elif event.type in ("invoice.paid", "invoice.payment_failed"):
        subscription_id = _invoice_subscription_id(obj)
        if subscription_id:
            data = _subscription_fetch(subscription_id)
            _apply_locked(SubscriptionState.from_stripe(data), data)


# --- Grace period --------------------------------------------------------------------------------


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
            before = _snapshot(account)
            account.tier = default
            if _account_save(account, before):
                moved.append(account.pk)
                if account.payment_status in (
                    Account.PaymentStatus.PAST_DUE,
                    Account.PaymentStatus.UNPAID,
                ):
                    _notify_on_commit("grace_expired_email_send", account)
    return moved


# --- Reconcile -----------------------------------------------------------------------------------


@dataclass
class ReconcileChange:
    account_id: int
    subscription_id: str
    changes: dict[str, tuple[Any, Any]]

    def describe(self) -> str:
        fields = ", ".join(
            f"{name} {_shown(old)} → {_shown(new)}" for name, (old, new) in self.changes.items()
        )
        return f"account {self.account_id} ({self.subscription_id or 'no subscription'}): {fields}"


def _shown(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if value is None or value == "":
        return "—"
    return str(getattr(value, "value", value))


def _current_subscription(account: Account, subscriptions: list[dict]) -> dict | None:
    """Which of a customer's subscriptions the account follows: one that is paid or being
    paid (newest first), else the one it last followed, else the newest."""
    ordered = sorted(subscriptions, key=lambda s: s.get("created") or 0, reverse=True)
    running = [s for s in ordered if s.get("status") in PAYING | PAYMENT_DUE]
    followed = [s for s in ordered if s["id"] == account.stripe_subscription_id]
    return next(iter(running or followed or ordered), None)


def subscriptions_reconcile(
    *, account_ids: Iterable[int] | None = None, now: datetime | None = None
) -> list[ReconcileChange]:
    """Re-read subscriptions from Stripe and repair accounts a lost webhook left behind.

    Every account with a Stripe customer (or only ``account_ids``: the admin's re-sync) is
    brought in line with its current subscription, by the same rule as the webhooks; each
    subscription that changed an account is stored through dj-stripe too. For all accounts it
    is one paginated walk over all subscriptions (``status=all``), not one call per account.
    Stripe is read completely before anything is written, so a Stripe error changes nothing.
    """
    now = now or timezone.now()
    accounts = Account.objects.filter(stripe_customer__isnull=False)
    if account_ids is not None:
        accounts = accounts.filter(pk__in=list(account_ids))
    linked = list(accounts.order_by("pk").values_list("pk", "stripe_customer__id"))
    client = stripe_client()
    if account_ids is None:
        listings = [client.v1.subscriptions.list(params={"status": "all", "limit": 100})]
    else:
        listings = [
            client.v1.subscriptions.list(
                params={"customer": customer_id, "status": "all", "limit": 100}
            )
            for _, customer_id in linked
        ]
    by_customer: dict[str, list[dict]] = {}
    # The SDK objects too: dj-stripe's sync pages through their items itself.
    originals: dict[str, Any] = {}
    for listing in listings:
        for subscription in listing.auto_paging_iter():
            data = _as_dict(subscription)
            originals[data["id"]] = subscription
            customer = data["customer"]
            customer = customer["id"] if isinstance(customer, dict) else customer
            by_customer.setdefault(customer, []).append(data)

    report = []
    for account_id, customer_id in linked:
        with transaction.atomic():
            account = Account.objects.select_for_update().get(pk=account_id)
            current = _current_subscription(account, by_customer.get(customer_id, []))
            if current is not None:
                changes = account_subscription_apply(account=account, subscription=current, now=now)
                if changes:
                    Subscription.sync_from_stripe_data(originals[current["id"]])
            else:
                changes = _account_subscription_forget(account, now)
        if changes:
            report.append(ReconcileChange(account_id, current["id"] if current else "", changes))
            logger.warning("Reconcile repaired %s", report[-1].describe())
    return report


def invoices_reconcile(*, account_ids: Iterable[int] | None = None) -> list[str]:
    """Store the invoices a lost webhook left out of dj-stripe's copy, which the billing page
    reads; returns the ids stored or updated.

    Per linked customer, the newest page of invoices (100: years of monthly invoices; the job
    runs daily, so older ones were seen before). An invoice is synced when dj-stripe has no row
    for it or a different status (e.g. the ``invoice.paid`` event was lost).
    """
    accounts = Account.objects.filter(stripe_customer__isnull=False)
    if account_ids is not None:
        accounts = accounts.filter(pk__in=list(account_ids))
    client = stripe_client()
    stored = []
    for customer_id in accounts.order_by("pk").values_list("stripe_customer__id", flat=True):
        listing = client.v1.invoices.list(params={"customer": customer_id, "limit": 100})
        # dj-stripe 2.11 keeps most of an invoice in its stripe_data JSON.
        known = dict(
            Invoice.objects.filter(customer__id=customer_id).values_list(
                "id", "stripe_data__status"
            )
        )
        for invoice in listing.data:
            if known.get(invoice.id) != invoice.status:
                Invoice.sync_from_stripe_data(invoice)
                stored.append(invoice.id)
    if stored:
        logger.warning("Reconcile stored %d invoice(s) a webhook had not: %s", len(stored), stored)
    return stored


def _account_subscription_forget(account: Account, now: datetime) -> dict[str, tuple[Any, Any]]:
    """Stripe has no subscription at all for this customer: nothing is paid for."""
    if account.payment_status == Account.PaymentStatus.NONE and not account.stripe_subscription_id:
        return {}
    before = _snapshot(account)
    account.tier = tier_default()
    account.subscribed_tier = None
    account.payment_status = Account.PaymentStatus.NONE
    account.stripe_subscription_id = ""
    account.cancel_at_period_end = False
    account.grace_until = None
    account.period_end = None
    return _account_save(account, before)


# --- Webhook endpoint ----------------------------------------------------------------------------


def webhook_endpoint_ensure(*, base_url: str | None = None) -> tuple[WebhookEndpoint, bool]:
    """The Stripe webhook endpoint for this portal, created (through dj-stripe, which keeps
    its signing secret) unless one Stripe still knows is already registered for ``base_url``.

    Returns ``(endpoint, created)``. Local rows whose endpoint Stripe no longer knows (deleted
    in the dashboard, or a restarted emulator) are removed, so the secret in use is always
    the live one.
    """
    base_url = (base_url or settings.SITE_URL).rstrip("/")
    prefix = f"{base_url}/stripe/webhook/"
    client = stripe_client()
    for endpoint in WebhookEndpoint.objects.filter(url__startswith=prefix).order_by("-created"):
        try:
            remote = _as_dict(client.v1.webhook_endpoints.retrieve(endpoint.id))
        except stripe.InvalidRequestError as error:
            if not _is_missing(error):
                raise
            logger.info("Forgetting webhook endpoint %s: Stripe no longer knows it", endpoint.id)
            endpoint.delete()
            continue
        if remote["url"] == endpoint.url and remote["status"] == "enabled" and endpoint.secret:
            missing = set(WEBHOOK_EVENTS) - set(remote["enabled_events"])
            if missing and "*" not in remote["enabled_events"]:
                remote = _as_dict(
                    client.v1.webhook_endpoints.update(
                        endpoint.id, params={"enabled_events": WEBHOOK_EVENTS}
                    )
                )
                remote["secret"] = endpoint.secret
                endpoint = WebhookEndpoint.sync_from_stripe_data(remote)
            return endpoint, False

    endpoint_uuid = uuid.uuid4()
    url = base_url + reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
    created = WebhookEndpoint._api_create(
        url=url,
        api_version=settings.STRIPE_API_VERSION,
        enabled_events=WEBHOOK_EVENTS,
        description="Meterdesk portal",
        metadata={"djstripe_uuid": str(endpoint_uuid)},
        livemode=settings.STRIPE_LIVE_MODE,
    )
    # The signing secret is only in this response; dj-stripe stores it on the row.
    return WebhookEndpoint.sync_from_stripe_data(created), True


# --- Operator re-sync ----------------------------------------------------------------------------


def _billing_snapshot(account: Account) -> dict[str, Any]:
    """The account's Stripe-driven state, as the audit log keeps it."""

    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "tier": account.tier.slug,
        "subscribed_tier": account.subscribed_tier.slug if account.subscribed_tier else None,
        "payment_status": account.payment_status,
        "stripe_subscription_id": account.stripe_subscription_id,
        "cancel_at_period_end": account.cancel_at_period_end,
        "grace_until": moment(account.grace_until),
        "period_start": moment(account.period_start),
        "period_end": moment(account.period_end),
    }


def accounts_stripe_resync(
    *, accounts: Iterable[Account], actor: AbstractBaseUser | None
) -> dict[int, AuditEntry]:
    """Re-read these accounts' subscriptions from Stripe (billing's reconcile, limited to
    them) and record, per account, its billing state before and after, changed or not: the
    operator asked, and "Stripe agrees" is an answer too. Accounts without a Stripe customer
    have nothing to re-read and are left out. Returns the entries by account id."""
    linked = Account.objects.filter(
        pk__in=[account.pk for account in accounts], stripe_customer__isnull=False
    ).select_related("owner", "tier", "subscribed_tier")
    before = {account.pk: _billing_snapshot(account) for account in linked}
    if not before:
        return {}
    # Stripe is called outside any transaction; the reconcile writes each account in its own.
    subscriptions_reconcile(account_ids=sorted(before))
    invoices_reconcile(account_ids=sorted(before))
    entries = {}
    for account in linked.all():
        entries[account.pk] = audit_record(
            actor=actor,
            action="account.stripe_resync",
            account=account,
            before=before[account.pk],
            after=_billing_snapshot(account),
        )
    return entries
