"""Stripe re-read, to repair what a lost webhook left behind: the daily reconcile of every
account's subscription and invoices, and an operator's re-sync of chosen accounts."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from djstripe.models import Invoice, Subscription

from billing.models import Tier
from billing.selectors import tier_default
from billing.services.subscriptions import (
    BILLING_STATE_FIELDS,
    account_subscription_apply,
    billing_state,
    billing_state_save,
)
from billing.stripe_api import as_dict, expandable_id, stripe_client
from billing.subscriptions import PAYING, PAYMENT_DUE
from portal.audit import audit_record
from portal.models import Account, AuditEntry

logger = logging.getLogger(__name__)


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
    by_customer: dict[str | None, list[dict]] = {}
    # The SDK objects too: dj-stripe's sync pages through their items itself.
    originals: dict[str, Any] = {}
    for listing in listings:
        for subscription in listing.auto_paging_iter():
            data = as_dict(subscription)
            originals[data["id"]] = subscription
            by_customer.setdefault(expandable_id(data["customer"]), []).append(data)

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
    before = billing_state(account)
    account.tier = tier_default()
    account.subscribed_tier = None
    account.payment_status = Account.PaymentStatus.NONE
    account.stripe_subscription_id = ""
    account.cancel_at_period_end = False
    account.grace_until = None
    account.period_end = None
    return billing_state_save(account=account, before=before)


# --- Operator re-sync -----------------------------------------------------------------------------


def _billing_snapshot(account: Account) -> dict[str, Any]:
    """The account's Stripe-driven state, as the audit log keeps it: tiers by slug, moments in
    ISO 8601."""

    def kept(value: Any) -> Any:
        if isinstance(value, Tier):
            return value.slug
        return value.isoformat() if isinstance(value, datetime) else value

    return {name: kept(getattr(account, name)) for name in BILLING_STATE_FIELDS}


def accounts_stripe_resync(
    *, accounts: Iterable[Account], actor: User | None
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
