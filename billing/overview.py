"""The business in figures for the operators' overview (the admin's index): revenue and
subscriptions by tier, paying conversions per week, and usage reports that need an operator.

Reads only, each a fixed number of queries whatever the number of accounts, so the admin's
index stays fast as the installation grows. Money is whole cents in the tier's currency,
never converted or mixed across currencies.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import CharField, Count, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncWeek
from djstripe.models import Subscription

from billing.models import MeterReport
from billing.selectors import SUBSCRIBED_STATUSES
from portal.models import Account

# Subscriptions whose base price counts in the monthly recurring revenue: paid up, or past due
# while Stripe still retries the payment (the customer still owes it). Trials pay nothing yet;
# an unpaid subscription has stopped retrying, so its money is no longer expected.
MRR_STATUSES = frozenset({Account.PaymentStatus.ACTIVE, Account.PaymentStatus.PAST_DUE})

# Stripe subscription statuses that never reached a first payment, or have not paid yet: a
# subscription in one of these is not a paying conversion ("Subscription statuses",
# https://docs.stripe.com/billing/subscriptions/overview#subscription-statuses).
NOT_PAYING_STATUSES = ("incomplete", "incomplete_expired", "trialing")

# Usage reports an operator has to look at: not billed, or possibly not billed, by Stripe.
REPORT_ATTENTION_STATUSES = (
    MeterReport.Status.FAILED,
    MeterReport.Status.STALE,
    MeterReport.Status.REJECTED,
    MeterReport.Status.SUSPECT,
)


@dataclass(frozen=True, slots=True)
class TierRevenue:
    """One subscribed tier: its subscriptions and what they bring in each month."""

    tier_id: int
    name: str
    currency: str
    # Subscriptions Stripe bills for this tier (active, trialing, past due, unpaid).
    subscriptions: int
    # Of them, those counted in the MRR (``MRR_STATUSES``).
    paying: int
    # The tier's monthly base price times ``paying``, in whole cents. Metered overage is not
    # recurring revenue: it varies with each period's usage and is invoiced as it happens.
    mrr_cents: int


def revenue_by_tier() -> list[TierRevenue]:
    """Subscriptions and MRR per subscribed tier, most revenue first; one query.

    Each subscription counts at its tier's current base price. The subscribed tier is Stripe's
    word (set only from the subscription, ``billing.services.subscriptions``), and Meterdesk's
    checkout and tier switch only ever sell a tier's current price."""
    rows = (
        Account.objects.filter(
            payment_status__in=SUBSCRIBED_STATUSES, subscribed_tier__isnull=False
        )
        .values(
            "subscribed_tier",
            "subscribed_tier__name",
            "subscribed_tier__currency",
            "subscribed_tier__sort_order",
        )
        .annotate(
            subscriptions=Count("pk"),
            paying=Count("pk", filter=Q(payment_status__in=MRR_STATUSES)),
        )
        .annotate(mrr_cents=F("paying") * F("subscribed_tier__base_price_cents"))
        .order_by("-mrr_cents", "subscribed_tier__sort_order")
    )
    return [
        TierRevenue(
            tier_id=row["subscribed_tier"],
            name=row["subscribed_tier__name"],
            currency=row["subscribed_tier__currency"],
            subscriptions=row["subscriptions"],
            paying=row["paying"],
            mrr_cents=row["mrr_cents"],
        )
        for row in rows
    ]


def mrr_by_currency(tiers: list[TierRevenue]) -> dict[str, int]:
    """The MRR in whole cents per currency (never added across currencies), largest first."""
    totals: dict[str, int] = {}
    for tier in tiers:
        totals[tier.currency] = totals.get(tier.currency, 0) + tier.mrr_cents
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def accounts_subscribed_to(accounts: QuerySet[Account], tier_id: int) -> QuerySet[Account]:
    """The accounts whose subscription Stripe bills for the tier, as ``revenue_by_tier``
    counts them."""
    return accounts.filter(payment_status__in=SUBSCRIBED_STATUSES, subscribed_tier_id=tier_id)


def _first_paying_subscription() -> Subquery:
    """When the organisation first subscribed and paid: the creation of the oldest of its
    subscriptions that got past its first payment. Matched by its own Stripe customers: the
    one it links to, and any it had before (``account_stripe_customer_ensure`` replaces a
    customer Stripe lost), each of which names the organisation in its metadata
    (``account_id``, set when it is created). Not by the customer's subscriber (dj-stripe's,
    the user who was primary owner then): one person owns several organisations, and an
    ownership transfer moves an organisation to another person."""
    return Subquery(
        Subscription.objects.alias(account_ref=KeyTextTransform("account_id", "customer__metadata"))
        .filter(
            Q(customer__djstripe_id=OuterRef("stripe_customer_id"))
            | Q(account_ref=Cast(OuterRef("pk"), CharField()))
        )
        .exclude(stripe_data__status__in=NOT_PAYING_STATUSES)
        .order_by("created")
        .values("created")[:1]
    )


def conversions_per_week(*, since: date) -> dict[date, int]:
    """Accounts whose first paying subscription started in each week (Monday, UTC) from the
    week of ``since`` on, ``{monday: count}``; weeks without one are left out. One query."""
    rows = (
        Account.objects.annotate(converted=_first_paying_subscription())
        .filter(converted__gte=datetime.combine(week_start(since), time(), tzinfo=UTC))
        .annotate(week=TruncWeek("converted"))
        .values("week")
        .annotate(count=Count("pk"))
        .order_by("week")
    )
    return {_as_date(row["week"]): row["count"] for row in rows}


def accounts_converted_between(
    accounts: QuerySet[Account], start: datetime, end: datetime
) -> QuerySet[Account]:
    """The accounts whose first paying subscription started in [start, end)."""
    return accounts.annotate(converted=_first_paying_subscription()).filter(
        converted__gte=start, converted__lt=end
    )


@dataclass(frozen=True, slots=True)
class ReportAttention:
    """Usage reports that need an operator: per status, and the accounts they belong to."""

    by_status: dict[str, int]
    accounts: int

    @property
    def reports(self) -> int:
        return sum(self.by_status.values())


def reports_needing_attention() -> ReportAttention:
    """Failed, stale, rejected and possibly rejected usage reports, counted per status and by
    distinct account; one query (the sender's status index serves it)."""
    attention = MeterReport.objects.filter(status__in=REPORT_ATTENTION_STATUSES)
    totals = attention.aggregate(
        accounts=Count("account", distinct=True),
        **{status: Count("pk", filter=Q(status=status)) for status in REPORT_ATTENTION_STATUSES},
    )
    return ReportAttention(
        by_status={status: totals[status] for status in REPORT_ATTENTION_STATUSES},
        accounts=totals["accounts"],
    )


def accounts_with_reports_needing_attention(accounts: QuerySet[Account]) -> QuerySet[Account]:
    return accounts.filter(
        pk__in=MeterReport.objects.filter(status__in=REPORT_ATTENTION_STATUSES).values("account")
    )


def _as_date(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def week_start(day: date) -> date:
    """The Monday of ``day``'s week, as ``TruncWeek`` (ISO 8601 weeks) counts them."""
    return day - timedelta(days=day.weekday())
