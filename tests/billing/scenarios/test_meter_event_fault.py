"""Stripe answers the first meter event of the period with a 500, then works again: whether the
failed call was lost or Stripe recorded it before failing, the invoice bills each admitted unit
once."""

from datetime import timedelta

import pytest

from billing.models import MeterReport
from tests.billing.scenarios.scenario import busy_stretch, hour_floor, metered_cents

pytestmark = pytest.mark.django_db

METER_EVENTS = "/v1/billing/meter_events"


@pytest.mark.parametrize(
    "recorded",
    [False, True],
    ids=["the failed call was lost", "stripe recorded it, then answered 500"],
)
def test_a_500_on_the_first_meter_event_is_billed_once(scenario, recorded):
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock
    started = scenario.upgrade(pro)
    end = scenario.period_end()

    first = clock.to(hour_floor(started) + timedelta(hours=2, minutes=15))
    assert busy_stretch(api, clock, pro, computes=12) == 120
    scenario.emulator.inject_fault(METER_EVENTS, status=500, count=1, apply=recorded)
    scenario.report_the_hour_of(first)

    [report] = MeterReport.objects.filter(account=scenario.account)
    assert (report.status, report.units, report.attempts) == ("sent", 120, 2)
    assert scenario.emulator.request_count(METER_EVENTS) == 2
    assert scenario.meter_total() == 120

    later = clock.to(hour_floor(started) + timedelta(days=6, hours=3))
    assert api.lookup(33) == [200] * 33
    scenario.report_the_hour_of(later)
    scenario.close_period(end)

    renewal = scenario.invoices()[-1]
    assert (renewal.billing_reason, renewal.status) == ("subscription_cycle", "paid")
    assert renewal.units(pro) == api.admitted["pro"] == 153
    assert renewal.cents(pro) == metered_cents(pro, 153) == 19  # 53 x 0.35¢ = 18.55¢
    assert renewal.amount_paid == pro.base_price_cents + 19
