"""A Stripe subscription read into the few facts an account's billing state depends on.

Pure parsing, no I/O. In API ``2026-05-27.dahlia`` the current period lives on each subscription
item (``items.data[].current_period_start/end``), no longer on the subscription itself; older
payloads are still read from the subscription as a fallback.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing.stripe_api import expandable_id

# Stripe statuses in which the customer keeps (or is about to keep) what they pay for.
PAYING = frozenset({"active", "trialing"})
# Payment failed: the customer keeps the tier for the grace period only.
PAYMENT_DUE = frozenset({"past_due", "unpaid"})
# The subscription is over (or never started): the account goes back to the default tier.
ENDED = frozenset({"canceled", "incomplete_expired", "paused"})


def _moment(timestamp: Any) -> datetime | None:
    return datetime.fromtimestamp(int(timestamp), UTC) if timestamp else None


@dataclass(frozen=True)
class SubscriptionState:
    id: str
    customer_id: str | None
    status: str
    product_ids: tuple[str, ...]
    price_ids: tuple[str, ...]
    period_start: datetime | None
    period_end: datetime | None
    cancel_at_period_end: bool
    # When Stripe ended the subscription; None while it has not ended. "If the subscription has
    # ended, the date the subscription ended" (The Subscription object,
    # https://docs.stripe.com/api/subscriptions/object); unlike ``canceled_at`` it is the moment
    # the subscription actually stopped (Changelog 2015-01-26, "Subscriptions now only report the
    # timestamp for API or invoice payment failures for the canceled_at field",
    # https://docs.stripe.com/changelog/2015-01-26/subscriptions-report-api-invoice-failures).
    ended_at: datetime | None
    # The account id we put in the metadata at Checkout; None when the subscription was made
    # elsewhere (e.g. in the Stripe dashboard).
    account_id: int | None

    @classmethod
    def from_stripe(cls, data: dict[str, Any]) -> "SubscriptionState":
        items = (data.get("items") or {}).get("data") or []
        prices = [item.get("price") or {} for item in items]
        starts = [
            item.get("current_period_start") for item in items if item.get("current_period_start")
        ]
        ends = [item.get("current_period_end") for item in items if item.get("current_period_end")]
        metadata = data.get("metadata") or {}
        account_id = str(metadata.get("account_id") or "")
        return cls(
            id=data["id"],
            customer_id=expandable_id(data.get("customer")),
            status=data.get("status") or "incomplete",
            product_ids=tuple(
                p for p in (expandable_id(price.get("product")) for price in prices) if p
            ),
            price_ids=tuple(p for p in (expandable_id(price) for price in prices) if p),
            period_start=_moment(min(starts) if starts else data.get("current_period_start")),
            period_end=_moment(max(ends) if ends else data.get("current_period_end")),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            ended_at=_moment(data.get("ended_at")),
            account_id=int(account_id) if account_id.isdigit() else None,
        )


def invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills: ``parent.subscription_details`` since API basil,
    ``invoice.subscription`` before."""
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return expandable_id(details.get("subscription")) or expandable_id(invoice.get("subscription"))
