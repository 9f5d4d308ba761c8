"""Switching plans mid-period, up (Pro → Team) and back down (Team → Pro), as the portal offers it:
the tier's button on the pricing page, effective from the next whole minute. Each stretch of the
period is invoiced at the price of its tier, each with its own included units, and the calls
made minutes before a switch are billed at the old price.

Stripe bills a metered price that leaves a subscription for the usage *reported* by then (an
invoice item), and the new price for usage after the update ("Manage your usage-based billing
setup > Update prices mid-cycle",
https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup), so the usage
before the switch must reach Stripe before the subscription moves."""

from datetime import timedelta

import pytest

from tests.billing.scenarios.scenario import hour_floor, metered_cents

pytestmark = pytest.mark.django_db


def test_usage_before_a_switch_is_billed_at_the_old_price_and_after_it_at_the_new(scenario):
    pro, team = scenario.tiers.pro, scenario.tiers.team
    api, clock = scenario.api, scenario.clock
    started = scenario.upgrade(pro)
    end = scenario.period_end()
    api.segment = "pro before the upgrade"

    day_one = clock.to(hour_floor(started) + timedelta(days=1, minutes=10))
    assert api.compute(12) == [200] * 12
    scenario.report_the_hour_of(day_one)

    # Calls 25 minutes before the upgrade, and just after pressing the button: their hour has
    # not been reported yet, and they are still Pro's.
    pressed = hour_floor(started) + timedelta(days=3, minutes=40, seconds=10)
    clock.to(pressed - timedelta(minutes=25))
    assert api.lookup(41) == [200] * 41
    clock.to(pressed)
    effective = scenario.switch_to(team)
    assert effective == pressed.replace(second=0) + timedelta(minutes=1)
    assert api.lookup(10) == [200] * 10
    # From the announced minute on, usage is Team's, also before Stripe has moved.
    api.segment = "team"
    clock.to(effective + timedelta(seconds=30))
    assert api.lookup(15) == [200] * 15
    scenario.switch_applied(effective, team)
    clock.advance(minutes=10)
    for _ in range(3):
        assert api.compute(24) == [200] * 24  # Team's whole burst: 120 units
        clock.advance(minutes=2)
    assert api.lookup(25) == [200] * 25
    scenario.report_the_hour_of(pressed)

    # And back down, with calls on both sides of the switch within the same hour.
    pressed = hour_floor(started) + timedelta(days=8, minutes=30)
    clock.to(pressed - timedelta(minutes=12))
    assert api.lookup(20) == [200] * 20
    clock.to(pressed)
    effective = scenario.switch_to(pro)
    api.segment = "pro after the downgrade"
    scenario.switch_applied(effective, pro)
    clock.advance(minutes=12)
    assert api.lookup(30) == [200] * 30
    scenario.report_the_hour_of(pressed)

    later = clock.to(hour_floor(started) + timedelta(days=12, hours=2))
    assert api.lookup(55) == [200] * 55
    clock.advance(minutes=1)
    assert api.compute(6) == [200] * 6
    scenario.report_the_hour_of(later)

    segments = dict(api.admitted)
    assert segments == {
        "pro before the upgrade": 60 + 41 + 10,
        "team": 15 + 360 + 25 + 20,
        "pro after the downgrade": 30 + 55 + 30,
    }
    scenario.close_period(end)

    renewal = scenario.invoices()[-1]
    assert (renewal.billing_reason, renewal.status) == ("subscription_cycle", "paid")
    metered = renewal.of(pro, team)
    tier_of = {pro.stripe_metered_price.id: "pro", team.stripe_metered_price.id: "team"}
    assert [(tier_of[line.price], line.units) for line in metered] == [
        ("pro", segments["pro before the upgrade"]),
        ("team", segments["team"]),
        ("pro", segments["pro after the downgrade"]),
    ]
    expected = [
        metered_cents(pro, 111),  # 11 x 0.35¢ = 3.85¢
        metered_cents(team, 420),  # 120 x 0.15¢ = 18¢
        metered_cents(pro, 115),  # 15 x 0.35¢ = 5.25¢
    ]
    assert [line.cents for line in metered] == expected == [4, 18, 5]
    assert renewal.units(pro, team) == api.total
    # Licensed prices are not prorated by the emulator (its README): the base billed in
    # advance is the plan the subscription is on when the period renews.
    assert renewal.cents(pro, team, metered=False) == pro.base_price_cents
    assert renewal.amount_paid == pro.base_price_cents + sum(expected)
