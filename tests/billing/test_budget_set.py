"""``budget_set`` / ``budget_remove``: a budget in money for usage charges, up to the tier's
spend cap, with the amounts to be emailed at."""

import re

import pytest

from billing.models import Budget, Tier
from billing.services.budgets import budget_remove, budget_set
from billing.services.errors import BillingError
from tests.billing.money_fixtures import capped_tier, subscribe
from tests.factories import PaidTierFactory

pytestmark = pytest.mark.django_db


def test_a_budget_up_to_the_cap_is_set_and_replaced(account):
    subscribe(account, capped_tier())

    budget_set(account=account, amount_cents=2000, alert_percents=[80, 50], alert_amounts_cents=[])
    budget_set(
        account=account, amount_cents=1000, alert_percents=[100], alert_amounts_cents=[250, 250]
    )

    budget = Budget.objects.get(account=account)
    assert (budget.amount_cents, budget.alert_percents, budget.alert_amounts_cents) == (
        1000,
        [100],
        [250],
    )
    assert budget.alert_points_cents() == [250, 1000]


def test_percentages_become_amounts_rounded_half_up_to_the_cent(account):
    subscribe(account, capped_tier())

    budget = budget_set(
        account=account, amount_cents=999, alert_percents=[50, 80], alert_amounts_cents=[]
    )

    assert budget.alert_points_cents() == [500, 799]  # 499.5 and 799.2 cents


@pytest.mark.parametrize(
    ("amount", "percents", "amounts", "message"),
    [
        (2001, [50], [], "cannot be more than Capped's spend cap of $20.00"),
        (0, [50], [], "more than zero"),
        (1000, [], [], "at least one amount"),
        (1000, [50], [2500], "above the spend cap of $20.00 could never be reached"),
        (1000, [0], [], "between 1 and 200"),
    ],
)
def test_amounts_out_of_bounds_are_refused_in_words(account, amount, percents, amounts, message):
    subscribe(account, capped_tier())

    with pytest.raises(BillingError, match=re.escape(message)):
        budget_set(
            account=account,
            amount_cents=amount,
            alert_percents=percents,
            alert_amounts_cents=amounts,
        )
    assert not Budget.objects.filter(account=account).exists()


def test_an_uncapped_tier_takes_any_budget(account):
    subscribe(account, capped_tier(spend_cap_cents=None))

    budget = budget_set(
        account=account, amount_cents=10_000_000, alert_percents=[100], alert_amounts_cents=[]
    )

    assert budget.amount_cents == 10_000_000


def test_a_tier_that_bills_no_usage_has_nothing_to_budget(account):
    subscribe(account, PaidTierFactory(name="Flat", overage_policy=Tier.OveragePolicy.BLOCK))

    with pytest.raises(BillingError, match="Flat bills no usage"):
        budget_set(account=account, amount_cents=500, alert_percents=[50], alert_amounts_cents=[])


def test_removing_a_budget(account):
    subscribe(account, capped_tier())
    budget_set(account=account, amount_cents=500, alert_percents=[50], alert_amounts_cents=[])

    assert budget_remove(account=account) is True
    assert budget_remove(account=account) is False
    assert not Budget.objects.filter(account=account).exists()
