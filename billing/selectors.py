"""Reads about tiers, and about the Stripe objects of an account."""

from django.db.models import Q, QuerySet
from djstripe.models import Invoice

from billing.models import Tier, TierSwitch
from billing.subscriptions import SubscriptionState
from portal.models import Account

# The tier an installation starts with (also created by migration billing.0003).
FREE_TIER_DEFAULTS = {
    "name": "Free",
    "description": "Try the API at no cost.",
    "base_price_cents": 0,
    "included_units": 1000,
    "rate_limit_per_minute": 60,
    "overage_policy": Tier.OveragePolicy.BLOCK,
    "scopes": ["basic"],
    "support_level": "Community",
    "is_public": True,
    "sort_order": 0,
}


def tier_default() -> Tier:
    """The tier new accounts start on. There is always one: if an operator removed every tier,
    the free tier is made again rather than failing the next signup."""
    tier = Tier.objects.filter(is_default=True).first()
    if tier is not None:
        return tier
    tier, _ = Tier.objects.get_or_create(
        slug="free", defaults={**FREE_TIER_DEFAULTS, "is_default": True}
    )
    return tier


# A subscription in these states bills the account's tier (or is trying to): its tier is changed
# in the customer portal, not with a second Checkout.
SUBSCRIBED_STATUSES = frozenset(
    {
        Account.PaymentStatus.ACTIVE,
        Account.PaymentStatus.TRIALING,
        Account.PaymentStatus.PAST_DUE,
        Account.PaymentStatus.UNPAID,
    }
)


def account_tier_set_by_operator(account: Account) -> bool:
    """A paid tier with no subscription behind it. Checkout and the subscription webhooks only
    ever put an account on a paid tier with a subscription, so this is an operator's doing (the
    admin's "Move to a tier"), and no card is charged for it."""
    return account.tier.is_paid and account.payment_status not in SUBSCRIBED_STATUSES


def tier_list_public() -> QuerySet[Tier]:
    return Tier.objects.filter(is_public=True).order_by("sort_order", "base_price_cents")


def tier_for_subscription(state: SubscriptionState) -> Tier | None:
    """The tier a Stripe subscription pays for: the tier whose Product its prices belong to.

    Matching on the product (not only the price) keeps subscribers on an archived, older price
    of a tier on that tier after its price changed. None: a product Meterdesk does not sell.
    """
    if not (state.product_ids or state.price_ids):
        return None
    return (
        Tier.objects.filter(
            Q(stripe_product__id__in=state.product_ids)
            | Q(stripe_base_price__id__in=state.price_ids)
            | Q(stripe_metered_price__id__in=state.price_ids)
        )
        .order_by("-base_price_cents", "sort_order")
        .first()
    )


def account_for_stripe_customer(customer_id: str | None) -> Account | None:
    if not customer_id:
        return None
    return Account.objects.filter(stripe_customer__id=customer_id).first()


def invoice_list_for_account(account: Account, limit: int = 24) -> list[Invoice]:
    """The account's invoices as dj-stripe stored them from Stripe's events, newest first."""
    if account.stripe_customer_id is None:
        return []
    return list(
        # Account.stripe_customer points at dj-stripe's primary key; Invoice.customer at the
        # Stripe id (DJSTRIPE_FOREIGN_KEY_TO_FIELD), hence the join on djstripe_id.
        # Drafts are Stripe's work in progress: nobody can pay or read them yet.
        Invoice.objects.filter(customer__djstripe_id=account.stripe_customer_id)
        .exclude(stripe_data__status="draft")
        .order_by("-created")[:limit]
    )


def tier_switch_pending(account: Account) -> TierSwitch | None:
    """The account's tier switch on its way to Stripe, if any."""
    return (
        TierSwitch.objects.select_related("from_tier", "to_tier")
        .filter(account=account, status=TierSwitch.Status.SCHEDULED)
        .first()
    )
