"""A whole period on Pro, past the included units: the renewal invoice bills the base price and,
to the cent, every unit admitted in the period past the included ones; nothing refused, nothing
used on the free tier before the upgrade and nothing used after the period is on it."""

from datetime import timedelta

import pytest

from tests.billing.scenarios.scenario import busy_stretch, hour_floor, metered_cents

pytestmark = pytest.mark.django_db


def test_a_full_period_with_overage_on_pro_is_invoiced_to_the_cent(scenario):
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock

    # On the free tier: a few calls, and one its tier does not allow (403). Never billed.
    assert api.lookup(3) == [200] * 3
    assert api.compute() == [403]
    clock.advance(minutes=1)
    started = scenario.upgrade(pro)
    end = scenario.period_end()

    # The first afternoon: computes, then more lookups than the burst allows, then calls that
    # are refused for what they are; the hourly report sends the hour.
    first = clock.to(hour_floor(started) + timedelta(hours=1, minutes=10))
    assert busy_stretch(api, clock, pro, computes=8) == 40 + 60
    scenario.report_the_hour_of(first)

    # Ten days in, a busy minute that stays just inside the burst.
    busy = clock.to(hour_floor(started) + timedelta(days=10, minutes=30))
    assert api.lookup(45) == [200] * 45
    assert api.compute(3) == [200] * 3
    scenario.report_the_hour_of(busy)

    # The period's last minutes: reported by the period-close job, in this period.
    clock.to(end - timedelta(minutes=4))
    assert api.lookup(7) == [200] * 7
    paid_in_period = api.admitted["pro"]
    assert paid_in_period == 40 + 60 + 45 + 15 + 7
    assert api.statuses[429] == 5 and api.statuses[400] == api.statuses[401] == 1

    scenario.close_period(end)
    # The next period's first calls belong to the next invoice, not this one.
    api.segment = "next period"
    assert api.lookup(4) == [200] * 4

    [checkout, renewal] = scenario.invoices()
    assert checkout.billing_reason == "subscription_create"
    assert (checkout.amount_due, checkout.units(pro)) == (pro.base_price_cents, 0)
    assert renewal.billing_reason == "subscription_cycle"
    assert renewal.of(pro)[0].period_end == int(end.timestamp())
    assert renewal.status == "paid"
    assert renewal.units(pro) == paid_in_period  # every admitted unit, once
    assert renewal.cents(pro) == metered_cents(pro, paid_in_period) == 23  # 67 x 0.35¢
    assert renewal.cents(pro, metered=False) == pro.base_price_cents  # the next month's base
    assert renewal.amount_due == renewal.amount_paid == 2900 + 23
    assert scenario.meter_total(started, end) == paid_in_period
    assert scenario.meter_total() == paid_in_period  # the free calls were never sent

    # The developer sees it on the billing page.
    page = scenario.browser.get("/billing/").content.decode()
    assert "$29.23" in page
