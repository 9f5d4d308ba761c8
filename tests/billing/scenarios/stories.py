"""The money scenarios, each written once and run twice: against the emulator
(tests/billing/scenarios/test_*.py, with ``Scenario``) and against Stripe in test mode
(tests/billing/test_stripe_contract.py, with ``ContractScenario``). A story takes the driver; where
the two runs differ (the moments Stripe's 35 days allow, webhooks or reconcile, the hosted pages
or the API, waiting for Stripe), the driver's method of the same name does it its way."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from django.test import Client
from django.urls import reverse

from billing.models import MeterReport, StripeThinEvent, Tier
from billing.tasks import account_enforce_grace_task
from portal.models import Account, AuditEntry
from tests.billing.scenarios.scenario import (
    FINALIZATION_GRACE,
    HOURLY_RUN,
    Beat,
    Developer,
    InvoiceFigures,
    ScenarioClock,
    busy_stretch,
    hour_floor,
    metered_cents,
    metered_segments,
)
from tests.portal.admin_actions import messages_of

REPORTS = reverse("admin:billing_meterreport_changelist")
ACCOUNTS = reverse("admin:portal_account_changelist")


class Tiers(Protocol):
    @property
    def free(self) -> Tier: ...
    @property
    def pro(self) -> Tier: ...
    @property
    def team(self) -> Tier: ...


class Driver(Protocol):
    """What a story needs of its run: ``Scenario`` (the emulator) or ``ContractScenario``."""

    @property
    def clock(self) -> ScenarioClock: ...
    @property
    def tiers(self) -> Tiers: ...
    @property
    def account(self) -> Account: ...
    @property
    def browser(self) -> Client: ...
    @property
    def api(self) -> Developer: ...
    @property
    def beat(self) -> Beat: ...
    @property
    def capture(self) -> Callable[..., AbstractContextManager[Any]]: ...
    @property
    def customer_id(self) -> str: ...

    def refresh(self) -> Account: ...
    def sync(self) -> None: ...
    def reconcile(self) -> None: ...
    def early_moment(self, started: datetime, end: datetime, after: timedelta) -> datetime: ...
    def upgrade(self, tier: Tier) -> datetime: ...
    def customer_portal(self, action: Literal["cancel_at_period_end", "update_card"]) -> None: ...
    def switch_to(self, tier: Tier) -> datetime: ...
    def switch_applied(self, effective_at: datetime, tier: Tier) -> None: ...
    def report_the_hour_of(self, moment: datetime) -> None: ...
    def assert_reports_taken(self) -> None: ...
    def period_end(self) -> datetime: ...
    def close_period(
        self, end: datetime, *, settles: Literal["paid", "finalized", "failed"] = "paid"
    ) -> InvoiceFigures: ...
    def invoice_settled(self, end: datetime) -> InvoiceFigures: ...
    def invoices_settled(self, count: int) -> list[InvoiceFigures]: ...
    def invoices(self) -> list[InvoiceFigures]: ...
    def base_prorations(self, renewal: InvoiceFigures, renews: datetime) -> int: ...
    def renewal_declined(self, end: datetime) -> InvoiceFigures: ...
    def pay(self, invoice: Any) -> None: ...
    def cancel_now_with_invoice_now(self) -> None: ...
    def delete_in_the_dashboard(self) -> None: ...
    def receive_meter_errors(self) -> None: ...
    def deliver_meter_error(self, identifier: str) -> None: ...
    def check_deleted_customers_meter(self, customer_id: str, units: int) -> None: ...
    def meter_total(self, start: datetime | None = None, end: datetime | None = None) -> int: ...
    def wait_for_meter_total(
        self, units: int, start: datetime | None = None, end: datetime | None = None
    ) -> None: ...
    def wait_until_counted(self) -> None: ...


def full_period_with_overage(s: Driver) -> None:
    """A whole period on Pro, past the included units: the renewal bills the base price and, to
    the cent, every unit admitted in the period past the included ones."""
    pro, api, clock = s.tiers.pro, s.api, s.clock

    # On the free tier: a few calls, and one its tier does not allow (403). Never billed.
    assert api.lookup(3) == [200] * 3
    assert api.compute() == [403]
    clock.advance(minutes=1)
    started = s.upgrade(pro)
    end = s.period_end()

    # The first afternoon: computes, then more lookups than the burst allows, then calls that
    # are refused for what they are; the hourly report sends the hour.
    first = clock.to(hour_floor(started) + timedelta(hours=1, minutes=10))
    assert busy_stretch(api, clock, pro, computes=8) == 40 + 60
    s.report_the_hour_of(first)

    # Ten days in, a busy minute that stays just inside the burst.
    busy = clock.to(hour_floor(started) + timedelta(days=10, minutes=30))
    assert api.lookup(45) == [200] * 45
    assert api.compute(3) == [200] * 3
    s.report_the_hour_of(busy)

    # The period's last minutes: reported by the period-close job, in this period.
    clock.to(end - timedelta(minutes=4))
    assert api.lookup(7) == [200] * 7
    paid_in_period = api.admitted["pro"]
    assert paid_in_period == 40 + 60 + 45 + 15 + 7
    assert api.statuses[429] == 5 and api.statuses[400] == api.statuses[401] == 1

    s.close_period(end)
    # The next period's first calls belong to the next invoice, not this one.
    api.segment = "next period"
    assert api.lookup(4) == [200] * 4

    [checkout, renewal] = s.invoices()
    assert checkout.billing_reason == "subscription_create"
    assert (checkout.amount_due, checkout.units(pro)) == (pro.base_price_cents, 0)
    assert renewal.billing_reason == "subscription_cycle"
    assert renewal.of(pro)[0].period_end == int(end.timestamp())
    assert renewal.status == "paid"
    assert renewal.units(pro) == paid_in_period  # every admitted unit, once
    assert renewal.cents(pro) == metered_cents(pro, paid_in_period) == 23  # 67 x 0.35¢
    assert renewal.cents(pro, metered=False) == pro.base_price_cents  # the next month's base
    assert renewal.amount_due == renewal.amount_paid == 2900 + 23
    assert s.meter_total(started, end) == paid_in_period
    assert s.meter_total() == paid_in_period  # the free calls were never sent

    # The developer sees it on the billing page.
    assert "$29.23" in s.browser.get("/billing/").content.decode()


def usage_rolled_up_late(s: Driver) -> None:
    """The rollup worker is behind at the period's end: the last minute's calls are reported
    inside Stripe's finalization grace hour and land on the period's invoice, on no other."""
    pro, api, clock = s.tiers.pro, s.api, s.clock
    started = s.upgrade(pro)
    end = s.period_end()

    early = clock.to(hour_floor(started) + timedelta(days=3, hours=1))
    assert api.lookup(50) == [200] * 50
    s.report_the_hour_of(early)

    # The final window's own calls (rolled up in time) and the last minute's (not).
    clock.to(end - timedelta(minutes=20))
    assert api.compute(10) == [200] * 10
    clock.to(end - timedelta(seconds=40))
    assert api.lookup(29) == [200] * 29
    in_period = api.admitted["pro"]
    clock.to(end + timedelta(minutes=1))
    s.beat.rollup()  # drains the minutes that ended two minutes ago: not the last one

    # Stripe drafts the invoice; the hourly report sends the final window without the rollup
    # (its worker is behind).
    clock.to(end + HOURLY_RUN)
    s.reconcile()
    s.beat.hourly_report(rollup=False)
    s.wait_for_meter_total(in_period - 29, started, end)

    # The worker catches up within the grace hour; the period-close job sends the rest.
    clock.to(end + timedelta(minutes=25))
    s.beat.period_close_report()
    late = MeterReport.objects.get(account=s.account, sequence=1)
    assert (late.units, late.status) == (29, "sent")
    assert started <= late.event_time < end

    renewal = s.invoice_settled(end)
    assert (renewal.billing_reason, renewal.status) == ("subscription_cycle", "paid")
    assert renewal.of(pro)[0].period_end == int(end.timestamp())
    assert renewal.units(pro) == in_period == 129
    assert renewal.cents(pro) == metered_cents(pro, 129) == 10  # 29 x 0.35¢ = 10.15¢
    assert renewal.amount_paid == pro.base_price_cents + 10
    assert s.meter_total() == in_period  # nothing counted twice, nothing on the next


def switch_up_and_back(s: Driver) -> None:
    """Pro → Team → Pro in one period: each stretch invoiced at its own tier's price, each with
    its own included units; calls minutes before a switch billed at the old price."""
    pro, team = s.tiers.pro, s.tiers.team
    api, clock = s.api, s.clock
    started = s.upgrade(pro)
    end = s.period_end()
    api.segment = "pro before the upgrade"

    day_one = clock.to(hour_floor(started) + timedelta(days=1, minutes=10))
    assert api.compute(12) == [200] * 12
    s.report_the_hour_of(day_one)

    # Calls 25 minutes before the upgrade, and just after pressing the button: their hour has
    # not been reported yet, and they are still Pro's.
    pressed = hour_floor(started) + timedelta(days=3, minutes=40, seconds=10)
    clock.to(pressed - timedelta(minutes=25))
    assert api.lookup(41) == [200] * 41
    clock.to(pressed)
    effective = s.switch_to(team)
    assert effective == pressed.replace(second=0) + timedelta(minutes=1)
    assert api.lookup(10) == [200] * 10
    # From the announced minute on, usage is Team's, also before Stripe has moved.
    api.segment = "team"
    clock.to(effective + timedelta(seconds=30))
    assert api.lookup(15) == [200] * 15
    s.switch_applied(effective, team)
    clock.advance(minutes=10)
    for _ in range(3):
        assert api.compute(24) == [200] * 24  # Team's whole burst: 120 units
        clock.advance(minutes=2)
    assert api.lookup(25) == [200] * 25
    s.report_the_hour_of(pressed)

    # And back down, with calls on both sides of the switch within the same hour.
    pressed = hour_floor(started) + timedelta(days=8, minutes=30)
    clock.to(pressed - timedelta(minutes=12))
    assert api.lookup(20) == [200] * 20
    clock.to(pressed)
    effective = s.switch_to(pro)
    api.segment = "pro after the downgrade"
    s.switch_applied(effective, pro)
    clock.advance(minutes=12)
    assert api.lookup(30) == [200] * 30
    s.report_the_hour_of(pressed)

    later = clock.to(hour_floor(started) + timedelta(days=12, hours=2))
    assert api.lookup(55) == [200] * 55
    clock.advance(minutes=1)
    assert api.compute(6) == [200] * 6
    s.report_the_hour_of(later)

    segments = dict(api.admitted)
    assert segments == {
        "pro before the upgrade": 60 + 41 + 10,
        "team": 15 + 360 + 25 + 20,
        "pro after the downgrade": 30 + 55 + 30,
    }
    renewal = s.close_period(end)
    assert (renewal.billing_reason, renewal.status) == ("subscription_cycle", "paid")
    stretches = metered_segments(renewal, {"pro": pro, "team": team})
    assert [(label, units) for label, units, _ in stretches] == [
        ("pro", segments["pro before the upgrade"]),
        ("team", segments["team"]),
        ("pro", segments["pro after the downgrade"]),
    ]
    expected = [
        metered_cents(pro, 111),  # 11 x 0.35¢ = 3.85¢
        metered_cents(team, 420),  # 120 x 0.15¢ = 18¢
        metered_cents(pro, 115),  # 15 x 0.35¢ = 5.25¢
    ]
    assert [cents for _, _, cents in stretches] == expected == [4, 18, 5]
    assert renewal.units(pro, team) == api.total
    # The base billed in advance is the plan the subscription is on when the period renews.
    next_base = [
        line
        for line in renewal.of(pro, team, metered=False)
        if line.period_start == int(end.timestamp())
    ]
    assert pro.stripe_base_price is not None
    assert {line.price for line in next_base} == {pro.stripe_base_price.id}
    assert sum(line.cents for line in next_base) == pro.base_price_cents
    # Besides it, only the prorations of the bases for the switches (none on the emulator).
    prorations = s.base_prorations(renewal, end)
    assert renewal.cents(pro, team, metered=False) == pro.base_price_cents + prorations
    assert renewal.amount_paid == renewal.total == pro.base_price_cents + sum(expected) + prorations


def cancel_at_period_end(s: Driver) -> None:
    """Cancelled in the customer portal at the period's end: the final invoice bills the
    period's usage; the free tier's calls afterwards are never billed."""
    pro, api, clock = s.tiers.pro, s.api, s.clock
    started = s.upgrade(pro)
    end = s.period_end()

    early = clock.to(hour_floor(started) + timedelta(days=2, hours=5))
    assert busy_stretch(api, clock, pro, computes=12) == 120
    s.report_the_hour_of(early)

    clock.to(hour_floor(started) + timedelta(days=12, minutes=20))
    s.customer_portal("cancel_at_period_end")
    account = s.refresh()
    assert (account.tier, account.cancel_at_period_end) == (pro, True)

    # Still Pro until the end: calls after the click, up to the last minutes, are billed.
    later = clock.to(hour_floor(started) + timedelta(days=20, hours=1))
    assert api.lookup(41) == [200] * 41
    s.report_the_hour_of(later)
    clock.to(end - timedelta(minutes=3))
    assert api.lookup(12) == [200] * 12
    billed = api.admitted["pro"]

    # The final invoice's 26 cents are below Stripe's minimum charge: it is finalized, not
    # necessarily charged.
    s.close_period(end, settles="finalized")
    account = s.refresh()
    assert (account.tier, account.payment_status) == (s.tiers.free, "canceled")

    # Back on the free tier: used, never billed.
    api.segment = "free"
    clock.advance(hours=2)
    assert api.lookup(5) == [200] * 5
    clock.advance(hours=1, minutes=10)
    s.beat.hourly_report()
    s.beat.period_close_report()

    [checkout, final] = s.invoices()
    assert checkout.amount_paid == pro.base_price_cents
    assert final.of(pro)[0].period_end == int(end.timestamp())
    assert final.units(pro) == billed == 60 + 60 + 41 + 12
    assert final.cents(pro, metered=False) == 0  # no next period to pay for
    assert final.cents(pro) == metered_cents(pro, billed) == 26  # 73 x 0.35¢ = 25.55¢
    assert final.amount_due == 26
    assert s.meter_total() == billed


def cancel_now_with_invoice_now(s: Driver) -> None:
    """Cancelled at once by an operator with a final invoice: it bills the usage so far."""
    pro, api, clock = s.tiers.pro, s.api, s.clock
    started = s.upgrade(pro)

    early = clock.to(hour_floor(started) + timedelta(days=2, hours=3))
    assert busy_stretch(api, clock, pro, computes=10) == 110
    s.report_the_hour_of(early)

    # Minutes before the operator cancels: their hour is still open.
    cancel_at = hour_floor(started) + timedelta(days=5, minutes=40)
    clock.to(cancel_at - timedelta(minutes=8))
    assert api.lookup(27) == [200] * 27
    billed = api.admitted["pro"]
    clock.to(cancel_at)
    s.cancel_now_with_invoice_now()
    account = s.refresh()
    assert (account.tier, account.payment_status) == (s.tiers.free, "canceled")

    # The free tier's calls after the cancel are never billed.
    api.segment = "free"
    clock.advance(minutes=3)
    assert api.lookup(6) == [200] * 6
    # The period-close job reports the last stretch within Stripe's grace hour.
    clock.to(cancel_at + HOURLY_RUN)
    s.beat.period_close_report()
    s.assert_reports_taken()
    s.wait_until_counted()
    clock.to(cancel_at + FINALIZATION_GRACE + timedelta(minutes=1))
    s.reconcile()
    [checkout, final] = s.invoices_settled(2)
    clock.advance(hours=2)
    s.beat.hourly_report()

    assert checkout.amount_paid == pro.base_price_cents
    assert final.status != "draft"
    assert final.units(pro) == billed == 60 + 50 + 27
    assert final.cents(pro, metered=False) == 0  # prorate defaults to false: no credit
    assert final.cents(pro) == metered_cents(pro, billed) == 13  # 37 x 0.35¢ = 12.95¢
    assert final.amount_due == 13
    assert s.meter_total() == billed


def failed_renewal_paid_after_grace(s: Driver, mailoutbox: list[Any]) -> None:
    """The renewal's charge fails: Pro through the grace period, the free tier after it, Pro
    again once the developer pays the open invoice; each period's usage billed once."""
    pro, api, clock = s.tiers.pro, s.api, s.clock
    started = s.upgrade(pro)
    end = s.period_end()

    busy = clock.to(s.early_moment(started, end, timedelta(days=4, hours=2)))
    assert busy_stretch(api, clock, pro, computes=12) == 120
    s.report_the_hour_of(busy)
    clock.to(end - timedelta(minutes=5))
    assert api.lookup(9) == [200] * 9
    first_period = api.admitted["pro"]

    # The card now declines: the renewal fails when Stripe finalizes it.
    failed = s.renewal_declined(end)
    account = s.refresh()
    assert (account.payment_status, account.tier) == ("past_due", pro)
    assert account.grace_until is not None
    assert len([m for m in mailoutbox if "payment failed" in m.subject.lower()]) == 1
    assert (failed.status, failed.amount_paid) == ("open", 0)
    assert failed.amount_due == pro.base_price_cents + metered_cents(pro, first_period)

    # During the grace period the developer keeps Pro, and its calls are the next period's.
    api.segment = "next period"
    grace = clock.to(hour_floor(end) + timedelta(days=2, hours=1))
    assert api.compute(8) == [200] * 8
    s.report_the_hour_of(grace)

    # The grace period ends: the hourly job moves the account to the free tier.
    clock.to(account.grace_until + timedelta(minutes=1))
    with s.capture(execute=True):
        assert account_enforce_grace_task.delay().get() == 1
    assert s.refresh().tier == s.tiers.free

    # A new card in the customer portal, then "Pay" on the open invoice's page.
    clock.advance(hours=3)
    s.customer_portal("update_card")
    listed = s.browser.get("/billing/").context["invoices"]
    [open_invoice] = [i for i in listed if i.status == "open"]
    assert open_invoice.id == failed.id
    s.pay(open_invoice)
    s.reconcile()
    account = s.refresh()
    assert (account.payment_status, account.tier, account.grace_until) == ("active", pro, None)

    # Back on Pro; the next period closes with its own usage only.
    restored = clock.advance(days=1)
    assert api.lookup(20) == [200] * 20
    s.report_the_hour_of(restored)
    next_end = s.period_end()
    s.close_period(next_end)

    invoices = s.invoices()
    first = next(i for i in invoices if i.id == failed.id)
    assert first.status == "paid"
    assert first.units(pro) == first_period == 60 + 60 + 9
    assert first.amount_paid == pro.base_price_cents + metered_cents(pro, first_period) == 2900 + 10
    second = invoices[-1]
    assert second.of(pro)[0].period_end == int(next_end.timestamp())
    assert second.units(pro) == api.admitted["next period"] == 40 + 20
    assert second.amount_paid == pro.base_price_cents + metered_cents(pro, 60) == 2900
    # Each unit on exactly one invoice.
    assert sum(invoice.units(pro) for invoice in invoices) == api.total
    assert s.meter_total() == api.total


def deleted_customer_repaired(s: Driver, admin_client: Client, admin_user: Any) -> None:
    """The customer is deleted in the Dashboard; Stripe refuses the next report after taking it;
    the developer subscribes again and the operator re-sends the report: every unit admitted on
    Pro invoiced once across the two subscriptions."""
    pro, api, clock = s.tiers.pro, s.api, s.clock
    s.receive_meter_errors()
    started = s.upgrade(pro)
    first_end = s.period_end()

    # The first period: used, reported, and invoiced at its end as usual.
    api.segment = "first period"
    early = clock.to(s.early_moment(started, first_end, timedelta(days=2, hours=5)))
    assert busy_stretch(api, clock, pro, computes=12) == 120
    s.report_the_hour_of(early)
    s.close_period(first_end)
    [_, first_renewal] = s.invoices()
    assert (first_renewal.billing_reason, first_renewal.status) == ("subscription_cycle", "paid")
    assert first_renewal.units(pro) == 120
    assert first_renewal.cents(pro) == metered_cents(pro, 120) == 7  # 20 x 0.35¢

    # Three days into the second period: calls, then, before their hour is reported, someone
    # deletes the developer's customer in the Stripe Dashboard.
    old_customer = s.customer_id
    deleted_at = hour_floor(first_end) + timedelta(days=3, minutes=40)
    api.segment = "before the deletion"
    clock.to(deleted_at - timedelta(minutes=25))
    assert api.lookup(45) == [200] * 45
    clock.advance(minutes=2)
    assert api.compute(9) == [200] * 9
    clock.to(deleted_at)
    s.delete_in_the_dashboard()
    account = s.refresh()
    assert (account.tier, account.payment_status) == (s.tiers.free, "canceled")

    # On the free tier until they notice: used, never billed.
    api.segment = "free"
    clock.advance(minutes=5)
    assert api.lookup(3) == [200] * 3

    # The hourly report sends the subscription's last stretch to the deleted customer: Stripe
    # takes the call, then refuses the event and says so with a meter error report.
    s.report_the_hour_of(deleted_at)
    last = MeterReport.objects.filter(account=account).latest("window_end")
    assert (last.units, last.stripe_customer_id) == (90, old_customer)
    s.deliver_meter_error(last.identifier)
    [rejected] = MeterReport.objects.filter(account=account, status="rejected")
    refused = rejected.identifier
    assert refused == last.identifier
    assert rejected.rejections[0]["code"] == "meter_event_customer_not_found"
    assert StripeThinEvent.objects.filter(
        type="v1.billing.meter.error_report_triggered", processed__isnull=False
    ).exists()
    s.check_deleted_customers_meter(old_customer, 120)

    # The operator sees it in the admin: rejected, with Stripe's reason.
    page = admin_client.get(REPORTS, {"status__exact": "rejected"}).content.decode()
    assert refused in page
    assert "Rejected by Stripe — needs an operator" in page
    assert "Stripe refused it after accepting it: meter_event_customer_not_found" in page

    # The next day the developer subscribes again: Checkout finds the customer gone and makes
    # a new one.
    clock.to(deleted_at + timedelta(days=1))
    second_start = s.upgrade(pro)
    second_end = s.period_end()
    new_customer = s.customer_id
    assert new_customer != old_customer

    # The operator re-sends the account's rejected reports from the account list.
    s.sync()
    response = admin_client.post(
        ACCOUNTS,
        {"action": "resend_reports", "_selected_action": [account.pk], "index": 0},
        follow=True,
    )
    assert any(m.startswith("Re-sent the failed usage reports of") for m in messages_of(response))
    rejected.refresh_from_db()
    assert (rejected.status, rejected.identifier) == ("sent", f"{refused}-r1")
    assert rejected.stripe_customer_id == new_customer
    # Dated when the new subscription began, so that its first invoice bills it.
    assert rejected.event_time == second_start
    entry = AuditEntry.objects.get(action="account.reports_resend")
    assert entry.actor == admin_user
    assert entry.after == {"reports": {refused: "sent"}}

    # The new subscription's own usage.
    api.segment = "second subscription"
    busy = clock.to(hour_floor(second_start) + timedelta(days=4, minutes=10))
    assert busy_stretch(api, clock, pro, computes=8) == 100
    s.report_the_hour_of(busy)
    s.close_period(second_end)

    [checkout, second_renewal] = s.invoices()
    assert (checkout.billing_reason, checkout.amount_paid) == (
        "subscription_create",
        pro.base_price_cents,
    )
    assert (second_renewal.billing_reason, second_renewal.status) == (
        "subscription_cycle",
        "paid",
    )
    assert second_renewal.of(pro)[0].period_end == int(second_end.timestamp())
    # The repaired 90 units with the new subscription's 100: one period, one included 100.
    assert second_renewal.units(pro) == 90 + 100
    assert second_renewal.cents(pro) == metered_cents(pro, 190) == 32  # 90 x 0.35¢ = 31.5¢
    assert second_renewal.amount_paid == pro.base_price_cents + 32

    # Every unit admitted on Pro, once, across both subscriptions; the free calls never.
    paid = api.total - api.admitted["free"]
    assert paid == 120 + 90 + 100
    assert first_renewal.units(pro) + second_renewal.units(pro) == paid
    assert s.meter_total() == 90 + 100
    s.check_deleted_customers_meter(old_customer, 120)

    # The developer sees it on the billing page: the base and the 32 cents.
    assert "$29.32" in s.browser.get("/billing/").content.decode()
