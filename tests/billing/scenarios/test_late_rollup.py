"""The rollup worker is behind at a period's end: the period's final window goes to Stripe without
the last minutes' calls, which are rolled up and reported minutes later, inside Stripe's
finalization grace hour. They are on that period's invoice, and on no other."""

from datetime import timedelta

import pytest

from billing.models import MeterReport
from tests.billing.scenarios.scenario import HOURLY_RUN, hour_floor, metered_cents

pytestmark = pytest.mark.django_db


def test_usage_rolled_up_after_the_final_window_still_reaches_the_periods_invoice(scenario):
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock
    started = scenario.upgrade(pro)
    end = scenario.period_end()

    early = clock.to(hour_floor(started) + timedelta(days=3, hours=1))
    assert api.lookup(50) == [200] * 50
    scenario.report_the_hour_of(early)

    # The final window's own calls (rolled up in time) and the last minute's (not).
    clock.to(end - timedelta(minutes=20))
    assert api.compute(10) == [200] * 10
    clock.to(end - timedelta(seconds=40))
    assert api.lookup(29) == [200] * 29
    in_period = api.admitted["pro"]
    clock.to(end + timedelta(minutes=1))
    scenario.beat.rollup()  # drains the minutes that ended two minutes ago: not the last one

    # Stripe drafts the invoice; the hourly report sends the final window without the rollup
    # (its worker is behind).
    clock.to(end + HOURLY_RUN)
    scenario.webhooks.deliver()
    scenario.beat.hourly_report(rollup=False)
    assert scenario.meter_total(started, end) == in_period - 29

    # The worker catches up within the grace hour; the period-close job sends the rest.
    clock.to(end + timedelta(minutes=25))
    scenario.beat.period_close_report()
    late = MeterReport.objects.get(account=scenario.account, sequence=1)
    assert (late.units, late.status) == (29, "sent")
    assert started <= late.event_time < end

    clock.to(end + timedelta(hours=1, minutes=1))
    scenario.webhooks.deliver()
    renewal = scenario.invoices()[-1]
    assert (renewal.billing_reason, renewal.status) == ("subscription_cycle", "paid")
    assert renewal.of(pro)[0].period_end == int(end.timestamp())
    assert renewal.units(pro) == in_period == 129
    assert renewal.cents(pro) == metered_cents(pro, 129) == 10  # 29 x 0.35¢ = 10.15¢
    assert renewal.amount_paid == pro.base_price_cents + 10
    assert scenario.meter_total() == in_period  # nothing counted twice, nothing on the next
