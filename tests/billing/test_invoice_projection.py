"""The period's money as the developer sees it (``billing.projection.invoice_projection_for``):
spend so far, exact and priced as Stripe prices each line, and the projection at the period's
average rate. Stripe's own figures, to the cent, are in
tests/billing/scenarios/test_projected_invoice.py."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from djstripe.models import Subscription

from billing.models import Tier, TierSwitch
from billing.projection import budget_standing, invoice_projection_for
from tests.factories import (
    AccountFactory,
    BudgetFactory,
    PaidTierFactory,
    StripeCustomerFactory,
    TierFactory,
    UsageRollupFactory,
)

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
END = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)  # 31 days
NOW = START + timedelta(days=15)  # 16 days to go


@pytest.fixture
def pro():
    return PaidTierFactory(
        name="Pro",
        base_price_cents=2900,
        included_units=1000,
        overage_unit_price_cents=Decimal("0.35"),
    )


def _subscribed(tier: Tier, **fields):
    defaults = {
        "tier": tier,
        "subscribed_tier": tier,
        "payment_status": "active",
        "period_start": START,
        "period_end": END,
    }
    return AccountFactory(**{**defaults, **fields})


def _used(account, units: int, at: datetime) -> None:
    UsageRollupFactory(account=account, minute=at, units=units, requests=units)


def test_spend_so_far_is_the_base_and_the_overage_at_the_tiers_price(pro):
    account = _subscribed(pro)
    _used(account, 1000, START + timedelta(hours=1))
    _used(account, 234, NOW - timedelta(minutes=5))

    projection = invoice_projection_for(account, NOW)

    assert projection is not None
    assert (projection.units, projection.usage_cents) == (1234, 82)  # 234 x 0.35¢ = 81.9¢
    assert projection.base_cents == 2900
    assert projection.spent_cents == 2982
    # The invoice at the period's end: this period's usage and next period's base.
    assert (projection.next_base_cents, projection.invoice_cents) == (2900, 2982)
    assert (projection.period_start, projection.period_end) == (START, END)


def test_the_projection_carries_the_periods_average_rate_to_its_end(pro):
    account = _subscribed(pro)
    _used(account, 1234, START + timedelta(days=1))

    projection = invoice_projection_for(account, NOW)

    assert projection is not None
    # 1,234 units in 15 days; 16 days to go: 1,316 more (rounded down).
    assert projection.projected_units == 1234 + 1316
    assert projection.projected_usage_cents == 543  # 1,550 x 0.35¢ = 542.5¢, half up
    assert projection.projected_invoice_cents == 543 + 2900
    assert projection.projected_spend_cents == 2900 + 543
    # "So far" stays exact beside it.
    assert projection.usage_cents == 82


def test_a_tier_with_no_overage_costs_its_base_whatever_the_usage():
    flat = PaidTierFactory(
        name="Flat",
        base_price_cents=1900,
        included_units=1000,
        overage_policy=Tier.OveragePolicy.BLOCK,
        overage_unit_price_cents=Decimal("0.35"),
    )
    account = _subscribed(flat)
    _used(account, 1000, START + timedelta(hours=2))

    projection = invoice_projection_for(account, NOW)

    assert projection is not None
    assert projection.stretches[0].projected_units > 1000
    assert (projection.usage_cents, projection.projected_usage_cents) == (0, 0)
    assert (projection.spent_cents, projection.projected_invoice_cents) == (1900, 1900)
    assert projection.spend_cap_cents is None


def test_a_capped_tier_is_projected_no_further_than_its_spend_cap():
    capped = PaidTierFactory(
        name="Capped",
        base_price_cents=4900,
        included_units=1000,
        overage_unit_price_cents=Decimal("0.5"),
        spend_cap_cents=100,  # 200 units past the included ones
    )
    account = _subscribed(capped)
    _used(account, 1100, START + timedelta(hours=2))

    projection = invoice_projection_for(account, NOW)

    assert projection is not None
    assert projection.usage_cents == 50
    # At this rate the period would reach 2,273 units; calls are refused past 1,200.
    assert projection.projected_units == 1200
    assert projection.projected_usage_cents == 100 == projection.spend_cap_cents


def test_each_stretch_of_a_switched_period_is_priced_at_its_own_tier(pro):
    team = PaidTierFactory(
        name="Team",
        base_price_cents=9900,
        included_units=300,
        overage_unit_price_cents=Decimal("0.15"),
    )
    pro.included_units = 100
    pro.save()
    switched = START + timedelta(days=5)
    customer = StripeCustomerFactory()
    Subscription.objects.create(
        id="sub_switched",
        customer=customer,
        stripe_data={
            "id": "sub_switched",
            "status": "active",
            "items": {
                "data": [
                    {
                        "current_period_start": int(START.timestamp()),
                        "current_period_end": int(END.timestamp()),
                    }
                ]
            },
        },
    )
    # The switch moved the account's (quota) period start to the switch minute.
    account = _subscribed(team, period_start=switched, stripe_subscription_id="sub_switched")
    TierSwitch.objects.create(
        account=account,
        from_tier=pro,
        to_tier=team,
        stripe_subscription_id="sub_switched",
        effective_at=switched,
        status=TierSwitch.Status.APPLIED,
    )
    _used(account, 250, START + timedelta(days=1))
    _used(account, 500, switched + timedelta(days=1))

    projection = invoice_projection_for(account, NOW)

    assert projection is not None
    assert projection.period_start == START
    before, after = projection.stretches
    assert (before.tier, before.start, before.end, before.current) == (pro, START, switched, False)
    assert (after.tier, after.start, after.end, after.current) == (team, switched, END, True)
    # Each with its own included units: 150 x 0.35¢ = 52.5¢ and 200 x 0.15¢ = 30¢.
    assert [(s.units, s.cents) for s in projection.stretches] == [(250, 53), (500, 30)]
    # The period's base was Pro's; the closing invoice bills Team's for the next one.
    assert (projection.base_cents, projection.next_base_cents) == (2900, 9900)
    assert projection.invoice_cents == 53 + 30 + 9900
    # The stretch before the switch is over; the rate of the whole period carries Team's on.
    assert before.projected_units == 250
    assert after.projected_units == 500 + 750 * 16 // 15
    assert after.projected_cents == 150  # 1,000 x 0.15¢


def test_a_subscription_ending_with_the_period_bills_no_next_base(pro):
    account = _subscribed(pro, cancel_at_period_end=True)
    _used(account, 1100, START + timedelta(hours=1))

    projection = invoice_projection_for(account, NOW)

    assert projection is not None
    assert (projection.renews, projection.next_base_cents) == (False, 0)
    assert projection.invoice_cents == 35  # 100 x 0.35¢


def test_no_invoice_is_coming_for_a_free_account_or_a_tier_set_by_an_operator(pro):
    free = AccountFactory(tier=TierFactory())
    set_by_operator = AccountFactory(tier=pro)

    assert invoice_projection_for(free, NOW) is None
    assert invoice_projection_for(set_by_operator, NOW) is None


def test_usage_outside_the_period_is_not_counted(pro):
    account = _subscribed(pro)
    _used(account, 5000, START - timedelta(minutes=1))
    _used(account, 1010, START + timedelta(minutes=1))

    projection = invoice_projection_for(account, NOW)

    assert projection is not None
    assert projection.units == 1010
    assert projection.usage_cents == 4  # 10 x 0.35¢ = 3.5¢, half up


def test_the_budget_standing_counts_usage_charges_against_the_budget(pro):
    account = _subscribed(pro)
    _used(account, 2000, START + timedelta(hours=1))  # 1,000 past the included: $3.50
    budget = BudgetFactory(account=account, amount_cents=500, alert_percents=[50, 80, 100])

    standing = budget_standing(budget, invoice_projection_for(account, NOW))

    assert standing is not None
    assert (standing.spent_cents, standing.percent) == (350, 70)
    assert standing.next_alert_cents == 400
    assert standing.projected_percent > 100


def test_the_projection_costs_a_few_queries_whatever_the_usage(pro, django_assert_max_num_queries):
    account = _subscribed(pro)
    for minute in range(300):
        _used(account, 3, START + timedelta(minutes=minute))
    account.refresh_from_db()

    with django_assert_max_num_queries(4):
        projection = invoice_projection_for(account, NOW)

    assert projection is not None and projection.units == 900
