"""The projected invoice against Stripe's own figures, to the cent (issue 16's must-show).

A developer's period runs through the real API, the jobs and the emulator. Whenever every unit
so far has reached Stripe, the projection's "so far" figure equals Stripe's preview of the
upcoming invoice (``POST /v1/invoices/create_preview``, "Create a preview invoice",
https://docs.stripe.com/api/invoices/create_preview); taken in the period's last minutes, after
the last call, it equals the invoice that closes the period, to the cent. Once with overage on
one tier, once with a switch mid-period (each stretch at its own tier's price)."""

from datetime import timedelta

import pytest

from billing.projection import InvoiceProjection, invoice_projection_for
from billing.stripe_api import stripe_client
from tests.billing.scenarios.scenario import hour_floor, metered_cents

pytestmark = pytest.mark.django_db


def _projection(scenario) -> InvoiceProjection:
    projection = invoice_projection_for(scenario.refresh())
    assert projection is not None
    return projection


def _preview_total(scenario) -> int:
    preview = stripe_client().v1.invoices.create_preview(
        params={"subscription": scenario.refresh().stripe_subscription_id}
    )
    return preview.total


def test_so_far_equals_stripes_preview_and_then_the_closing_invoice_to_the_cent(scenario):
    s = scenario
    pro, api, clock = s.tiers.pro, s.api, s.clock
    started = s.upgrade(pro)
    end = s.period_end()

    # Day two: past the 100 included units.
    day_two = clock.to(hour_floor(started) + timedelta(days=1, minutes=5))
    assert api.lookup(45) == [200] * 45
    clock.advance(minutes=2)
    assert api.compute(9) == [200] * 9  # 45 units
    clock.advance(minutes=2)
    assert api.lookup(40) == [200] * 40
    s.report_the_hour_of(day_two)
    s.assert_reports_taken()

    # Everything so far is with Stripe: the projection's "so far" is Stripe's preview.
    projection = _projection(s)
    assert projection.units == api.total == 130
    assert projection.usage_cents == metered_cents(pro, 130) == 11  # 30 x 0.35¢ = 10.5¢
    assert projection.invoice_cents == _preview_total(s) == 2900 + 11
    # Half a day in a month-long period, so the projection runs far ahead of it.
    assert projection.projected_invoice_cents > projection.invoice_cents

    # The period's last minutes, after its last call: the projection's "so far" then.
    clock.to(end - timedelta(minutes=5))
    assert api.lookup(37) == [200] * 37
    clock.advance(minutes=1)
    last = _projection(s)
    assert last.units == api.total == 167
    assert last.usage_cents == metered_cents(pro, 167) == 23  # 67 x 0.35¢ = 23.45¢
    assert last.invoice_cents == 2923

    renewal = s.close_period(end)
    assert renewal.billing_reason == "subscription_cycle"
    assert renewal.total == renewal.amount_paid == last.invoice_cents
    assert renewal.cents(pro) == last.usage_cents
    # And the developer read it on the billing page before the period closed.
    assert renewal.status == "paid"


def test_a_switched_period_is_projected_stretch_by_stretch_to_the_cent(scenario):
    s = scenario
    pro, team = s.tiers.pro, s.tiers.team
    api, clock = s.api, s.clock
    started = s.upgrade(pro)
    end = s.period_end()

    before = clock.to(hour_floor(started) + timedelta(days=2, minutes=10))
    assert api.lookup(45) == [200] * 45
    clock.advance(minutes=2)
    assert api.lookup(45) == [200] * 45
    clock.advance(minutes=2)
    assert api.compute(6) == [200] * 6  # Pro: 120 units, 20 past its 100
    clock.advance(minutes=1)
    effective = s.switch_to(team)
    s.switch_applied(effective, team)
    clock.advance(minutes=5)
    for _ in range(4):
        assert api.compute(24) == [200] * 24  # Team: 480 units, 180 past its 300
        clock.advance(minutes=2)
    s.report_the_hour_of(before)
    s.assert_reports_taken()

    projection = _projection(s)
    old, new = projection.stretches
    assert (old.tier, old.units, old.cents) == (pro, 120, metered_cents(pro, 120))  # 7¢
    assert (new.tier, new.units, new.cents) == (team, 480, metered_cents(team, 480))  # 27¢
    # Stripe's preview: the old stretch as a pending invoice item, the new one on the metered
    # line, Team's base for the next period.
    assert projection.invoice_cents == _preview_total(s) == 7 + 27 + team.base_price_cents

    clock.to(end - timedelta(minutes=5))
    assert api.lookup(30) == [200] * 30
    clock.advance(minutes=1)
    last = _projection(s)
    assert [stretch.units for stretch in last.stretches] == [120, 510]
    assert last.invoice_cents == 7 + metered_cents(team, 510) + team.base_price_cents

    renewal = s.close_period(end)
    # Licensed prices are not prorated by the emulator (its README): the closing invoice is the
    # two stretches and the next base, as projected.
    assert renewal.total == renewal.amount_paid == last.invoice_cents
    assert renewal.cents(pro, team) == last.usage_cents
