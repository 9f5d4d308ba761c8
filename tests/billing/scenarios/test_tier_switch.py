"""Switching plans mid-period, up (Pro → Team) and back down (Team → Pro), as the portal offers it:
the tier's button on the pricing page, effective from the next whole minute. Each stretch of the
period is invoiced at the price of its tier, each with its own included units, and the calls
made minutes before a switch are billed at the old price.

Stripe bills a metered price that leaves a subscription for the usage *reported* by then (an
invoice item), and the new price for usage after the update ("Manage your usage-based billing
setup > Update prices mid-cycle",
https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup), so the usage
before the switch must reach Stripe before the subscription moves."""

import pytest

from tests.billing.scenarios.stories import switch_up_and_back

pytestmark = pytest.mark.django_db


def test_usage_before_a_switch_is_billed_at_the_old_price_and_after_it_at_the_new(scenario):
    switch_up_and_back(scenario)
