"""A developer's money in the current billing period: what the period has cost so far and what
its invoice will come to, priced from the tier rows as Stripe prices them.

How Stripe bills a Meterdesk subscription (``billing.stripe_specs``; flexible billing mode):

- the base price is billed in advance: a period's base is on the invoice that opens it (the
  Checkout invoice, or the previous period's renewal);
- the metered price is billed in arrears, on the invoice Stripe drafts when the period ends,
  which also bills the *next* period's base (none when the subscription ends with the period);
- after a mid-period tier switch each stretch of the period is priced at its own tier's price
  with its own included units: the stretch before the switch as a pending invoice item, the
  stretch after it on the metered line ("Manage your usage-based billing setup: Update prices
  mid-cycle", https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup;
  ``billing.services.switch``); both land on the period's closing invoice.

"So far" is exact: the units admitted up to now (rolled up and live, ``period_units``), priced
per stretch and rounded once per line, which is what the closing invoice bills once every unit
is reported (``tests/billing/scenarios/test_projected_invoice.py`` pins it to the cent). The
projection adds the period's average rate so far, carried to the period's end, to the current
stretch, never past what the spend cap lets through. Not included: prorations of the base price
that Stripe adds for a switch between tiers of different base prices (the emulator does not
make them; Stripe's own preview shows them), taxes and discounts (Meterdesk sets none).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from djstripe.models import Subscription

from billing.models import Budget, Tier, TierSwitch
from billing.selectors import SUBSCRIBED_STATUSES
from billing.subscriptions import SubscriptionState
from metering.selectors import period_units
from portal.models import Account


@dataclass(frozen=True)
class UsageStretch:
    """A stretch of the billing period on one tier: the whole period, or the part before or
    after a tier switch."""

    tier: Tier
    start: datetime
    # A switch, or the period's end.
    end: datetime
    units: int
    cents: int
    projected_units: int
    projected_cents: int
    current: bool

    @property
    def overage_units(self) -> int:
        return max(0, self.units - self.tier.included_units) if self.tier.bills_usage else 0


@dataclass(frozen=True)
class InvoiceProjection:
    """The period's money, in whole cents of ``currency``. "So far" figures are exact as of
    ``now``; "projected" ones carry the period's average rate to its end."""

    now: datetime
    period_start: datetime
    period_end: datetime
    currency: str
    stretches: tuple[UsageStretch, ...]
    # The base billed for this period, in advance, when it began.
    base_cents: int
    # The base the period's closing invoice bills for the next period; 0 when the
    # subscription ends with this period.
    next_base_cents: int
    renews: bool
    tier: Tier

    @property
    def usage_cents(self) -> int:
        return sum(stretch.cents for stretch in self.stretches)

    @property
    def projected_usage_cents(self) -> int:
        return sum(stretch.projected_cents for stretch in self.stretches)

    @property
    def units(self) -> int:
        return sum(stretch.units for stretch in self.stretches)

    @property
    def projected_units(self) -> int:
        return sum(stretch.projected_units for stretch in self.stretches)

    @property
    def spent_cents(self) -> int:
        """This period's cost so far: its base and its usage so far."""
        return self.base_cents + self.usage_cents

    @property
    def projected_spend_cents(self) -> int:
        return self.base_cents + self.projected_usage_cents

    @property
    def invoice_cents(self) -> int:
        """The closing invoice as it stands: the usage so far and the next period's base."""
        return self.usage_cents + self.next_base_cents

    @property
    def projected_invoice_cents(self) -> int:
        return self.projected_usage_cents + self.next_base_cents

    @property
    def spend_cap_cents(self) -> int | None:
        """The current tier's cap on usage charges; None: uncapped, or no usage is billed."""
        return self.tier.spend_cap_cents if self.tier.overage_cap_units() is not None else None

    @property
    def elapsed_fraction(self) -> float:
        """How far into the period ``now`` is, 0 to 1, for drawing only (never for money)."""
        whole = (self.period_end - self.period_start).total_seconds()
        done = (self.now - self.period_start).total_seconds()
        return min(1.0, max(0.0, done / whole)) if whole > 0 else 1.0


def invoice_projection_for(
    account: Account, now: datetime | None = None
) -> InvoiceProjection | None:
    """The account's money for the billing period containing ``now``. None when no invoice is
    coming: no subscription (a free account, or a paid tier an operator set)."""
    now = now or timezone.now()
    tier = account.subscribed_tier or account.tier
    if account.payment_status not in SUBSCRIBED_STATUSES or not tier.is_paid:
        return None
    segment_start, period_end = account.present_period(now)
    billing_start = _billing_period_start(account, segment_start, period_end)
    bounds = _stretch_bounds(account, billing_start, segment_start, period_end, tier)
    stretches = [
        _stretch(account, stretch_tier, start, end, current=end == period_end)
        for stretch_tier, start, end in bounds
    ]
    stretches = _projected(stretches, billing_start, period_end, now)
    renews = not account.cancel_at_period_end
    return InvoiceProjection(
        now=now,
        period_start=billing_start,
        period_end=period_end,
        currency=tier.currency,
        stretches=tuple(stretches),
        base_cents=bounds[0][0].base_price_cents,
        next_base_cents=tier.base_price_cents if renews else 0,
        renews=renews,
        tier=tier,
    )


def _billing_period_start(
    account: Account, segment_start: datetime, period_end: datetime
) -> datetime:
    """Where Stripe's billing period began. A tier switch moved the account's period start to
    the switch minute (the quota's segment); the subscription (dj-stripe's copy) keeps the
    period's own start. Without a copy for this period, the account's start is the best known."""
    if not account.stripe_subscription_id:
        return segment_start
    data = (
        Subscription.objects.filter(id=account.stripe_subscription_id)
        .values_list("stripe_data", flat=True)
        .first()
    )
    if not data:
        return segment_start
    state = SubscriptionState.from_stripe({"id": account.stripe_subscription_id, **data})
    if state.period_start is None or state.period_end != period_end:
        return segment_start
    if segment_start <= state.period_start:
        return segment_start
    if data.get("start_date") == int(state.period_start.timestamp()) and (
        state.period_start.second == 0
    ):
        # The subscription's first period, started on a whole minute: the account counts it
        # from a second later, so the free calls of that minute stay free
        # (billing.services.subscriptions); so does its first stretch here.
        return state.period_start + timedelta(seconds=1)
    return state.period_start


def _stretch_bounds(
    account: Account,
    billing_start: datetime,
    segment_start: datetime,
    period_end: datetime,
    tier: Tier,
) -> list[tuple[Tier, datetime, datetime]]:
    """(tier, start, end) of each stretch of the period, oldest first: one per switch applied
    in it, then the current one."""
    switches = list(
        TierSwitch.objects.select_related("from_tier")
        .filter(
            account=account,
            status=TierSwitch.Status.APPLIED,
            to_tier__isnull=False,
            effective_at__gt=billing_start,
            effective_at__lte=segment_start,
        )
        .order_by("effective_at")
    )
    bounds = []
    start = billing_start
    for switch in switches:
        if switch.from_tier is not None:
            bounds.append((switch.from_tier, start, switch.effective_at))
        start = switch.effective_at
    bounds.append((tier, start if switches else segment_start, period_end))
    return bounds


def _stretch(
    account: Account, tier: Tier, start: datetime, end: datetime, *, current: bool
) -> UsageStretch:
    units = period_units(account.pk, start, end)
    cents = tier.usage_cents(units)
    return UsageStretch(
        tier=tier,
        start=start,
        end=end,
        units=units,
        cents=cents,
        projected_units=units,
        projected_cents=cents,
        current=current,
    )


def _projected(
    stretches: list[UsageStretch], start: datetime, end: datetime, now: datetime
) -> list[UsageStretch]:
    """The current stretch carried to the period's end at the period's average rate so far
    (whole units, rounded down), capped where the tier refuses calls."""
    elapsed = int((now - start).total_seconds())
    remaining = int((end - now).total_seconds())
    current = stretches[-1]
    if not current.current or elapsed <= 0 or remaining <= 0:
        return stretches
    units_so_far = sum(stretch.units for stretch in stretches)
    more = units_so_far * remaining // elapsed
    projected = current.units + more
    ceiling = _units_ceiling(current.tier)
    if ceiling is not None:
        projected = min(projected, max(ceiling, current.units))
    stretches[-1] = UsageStretch(
        tier=current.tier,
        start=current.start,
        end=current.end,
        units=current.units,
        cents=current.cents,
        projected_units=projected,
        projected_cents=current.tier.usage_cents(projected),
        current=True,
    )
    return stretches


def _units_ceiling(tier: Tier) -> int | None:
    """The most units a stretch on ``tier`` can bill: past the cap's units calls are refused.
    None: no ceiling on billed units (a ``block`` tier bills none past its included units)."""
    cap_units = tier.overage_cap_units()
    return tier.included_units + cap_units if cap_units is not None else None


@dataclass(frozen=True)
class BudgetStanding:
    """The period's usage charges against the developer's budget."""

    budget_cents: int
    spent_cents: int
    projected_cents: int
    # The next amount an email goes at; None: every amount is reached.
    next_alert_cents: int | None

    @property
    def percent(self) -> int:
        """Whole percent of the budget spent, rounded down."""
        return self.spent_cents * 100 // self.budget_cents

    @property
    def projected_percent(self) -> int:
        return self.projected_cents * 100 // self.budget_cents

    @property
    def bar_percent(self) -> int:
        return min(100, self.percent)


def budget_standing(
    budget: Budget | None, projection: InvoiceProjection | None
) -> BudgetStanding | None:
    """Where the period's usage charges stand against ``budget``; None without either."""
    if budget is None or projection is None:
        return None
    spent = projection.usage_cents
    ahead = [point for point in budget.alert_points_cents() if point > spent]
    return BudgetStanding(
        budget_cents=budget.amount_cents,
        spent_cents=spent,
        projected_cents=projection.projected_usage_cents,
        next_alert_cents=ahead[0] if ahead else None,
    )
