"""The emulator checked against Stripe itself: the money scenarios of tests/billing/scenarios/ run
against api.stripe.com in test mode, each on a test clock of its own, through the same product
code (the tier sync, the /v1/ API and its limiter, the rollup, report and tier-switch jobs, the
reconcile, the thin-event receiver). Each one asserts its emulator twin's figures to the cent.

Opt-in: it runs only with STRIPE_CONTRACT_TESTS=1 and a test-mode key in STRIPE_TEST_SECRET_KEY,
and is skipped otherwise, on a laptop and in CI alike (CI cannot reach Stripe; a run may promise
it with MDK_SERVICES_REQUIRED=stripe, and then a missing key fails). See docs/stripe.md,
"Checking the emulator against Stripe". A run takes about half an hour, three to six minutes a
scenario, most of it waiting for test clocks to advance and meters to aggregate; one scenario
runs with ``-k`` (e.g. ``-k rolled_up_late``).

The twins (tests/billing/scenarios/):

- test_full_period.py: a full period with overage on Pro.
- test_late_rollup.py: usage rolled up after the final window is reported inside Stripe's
  finalization grace hour and lands on the period's invoice.
- test_tier_switch.py: Pro → Team → Pro in one period, each stretch invoiced at its own price.
- test_cancel.py: cancel at period end (customer portal) and cancel now with ``invoice_now``.
- test_payment_failed.py: the renewal's charge fails, the grace period runs out, the developer
  pays the open invoice and is restored.
- test_unknown_customer.py: the customer is deleted in the Dashboard, Stripe refuses the next
  report after accepting it (a meter error report, a thin event), the developer subscribes again
  and the operator re-sends the report.

Not here: test_meter_event_fault.py (a 500 on the first send) needs fault injection, which only
the emulator has; Stripe's idempotency behaviour it relies on is cited in docs/stripe.md.

How these runs differ from the emulator's, in general: tests/billing/stripe_contract.py (a test
clock per scenario, reconcile instead of webhooks, the API instead of the hosted pages). A test
whose moments differ from its twin's says so. Two more differences:

- Moments. Every usage a scenario reports must be dated in the past of real time and within
  Stripe's 35 days, so single-period scenarios start 33 days ago and two-period ones 41 days ago
  (``STARTS``); where the twin's timeline is longer than 35 days, its earliest usage moves
  towards the period's end. The figures do not depend on the moments.
- Licensed prorations. Stripe prorates the base prices of a tier switch (``create_prorations``,
  "Prorations", https://docs.stripe.com/billing/subscriptions/prorations); the emulator does not
  (its README). The tier-switch scenario checks the metered stretches and the next period's base
  to the cent, and that the invoice holds nothing else but those proration lines.
"""

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import stripe
from django.urls import reverse

from billing.models import MeterReport, StripeThinEvent
from billing.stripe_api import stripe_client
from billing.tasks import account_enforce_grace_task
from portal.models import AuditEntry
from tests.billing.scenarios.scenario import (
    FINALIZATION_GRACE,
    HOURLY_RUN,
    busy_stretch,
    hour_floor,
    metered_cents,
)
from tests.billing.stripe_contract import (
    CONTRACT_METER_EVENT,
    OPT_IN,
    ContractScenario,
    contract_key,
    metered_segments,
)
from tests.portal.admin_actions import messages_of
from tests.services import not_configured

pytestmark = pytest.mark.django_db

# How many days before now each scenario's test clock starts: one period (28 to 31 days) ends at
# least two days before now; two periods leave room for the eight days after the first one.
STARTS = {"one period": 33, "two periods": 41}
REPORTS = reverse("admin:billing_meterreport_changelist")
ACCOUNTS = reverse("admin:portal_account_changelist")


@pytest.fixture
def real_stripe(settings, monkeypatch) -> stripe.StripeClient:
    """The portal pointed at api.stripe.com in test mode (our client and dj-stripe's)."""
    key = contract_key()
    if key is None:
        not_configured(
            "stripe",
            f"Stripe contract tests are opt-in: set {OPT_IN}=1 and STRIPE_TEST_SECRET_KEY="
            "sk_test_... (they call api.stripe.com in test mode)",
        )
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_TEST_SECRET_KEY = key
    settings.STRIPE_API_BASE = ""
    settings.STRIPE_METER_EVENT_NAME = CONTRACT_METER_EVENT
    # A scenario spans months; the developer's browser session must outlive them.
    settings.SESSION_COOKIE_AGE = 400 * 86400
    monkeypatch.setattr(stripe, "api_base", stripe.DEFAULT_API_BASE)
    return stripe_client()


@pytest.fixture
def contract(
    real_stripe, monkeypatch, django_capture_on_commit_callbacks
) -> Iterator[Callable[[str], ContractScenario]]:
    """Starts a scenario on a test clock of its own (``STARTS``); deletes the clock afterwards,
    and with it the scenario's customers and subscriptions."""
    started: list[ContractScenario] = []

    def start(length: str) -> ContractScenario:
        scenario = ContractScenario.start(
            client=real_stripe,
            days_ago=STARTS[length],
            monkeypatch=monkeypatch,
            capture=django_capture_on_commit_callbacks,
        )
        started.append(scenario)
        return scenario

    yield start
    for scenario in started:
        scenario.delete_test_clock()


def test_a_full_period_with_overage_on_pro_is_invoiced_by_stripe_as_by_the_emulator(contract):
    scenario = contract("one period")
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock

    # On the free tier: a few calls, and one its tier does not allow (403). Never billed.
    assert api.lookup(3) == [200] * 3
    assert api.compute() == [403]
    clock.advance(minutes=1)
    started = scenario.upgrade(pro)
    end = scenario.period_end()

    first = clock.to(hour_floor(started) + timedelta(hours=1, minutes=10))
    assert busy_stretch(api, clock, pro, computes=8) == 40 + 60
    scenario.report_the_hour_of(first)

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

    assert "$29.23" in scenario.browser.get("/billing/").content.decode()


def test_usage_rolled_up_late_reaches_the_periods_invoice_on_stripe_as_on_the_emulator(contract):
    scenario = contract("one period")
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

    # Stripe drafts the invoice; the hourly report sends the final window without the rollup.
    clock.to(end + HOURLY_RUN)
    scenario.reconcile()
    scenario.beat.hourly_report(rollup=False)
    scenario.wait_for_meter_total(in_period - 29, started, end)

    # The worker catches up within the grace hour; the period-close job sends the rest.
    clock.to(end + timedelta(minutes=25))
    scenario.beat.period_close_report()
    late = MeterReport.objects.get(account=scenario.account, sequence=1)
    assert (late.units, late.status) == (29, "sent")
    assert started <= late.event_time < end

    renewal = scenario.invoice_settled(end)
    assert (renewal.billing_reason, renewal.status) == ("subscription_cycle", "paid")
    assert renewal.of(pro)[0].period_end == int(end.timestamp())
    assert renewal.units(pro) == in_period == 129
    assert renewal.cents(pro) == metered_cents(pro, 129) == 10  # 29 x 0.35¢ = 10.15¢
    assert renewal.amount_paid == pro.base_price_cents + 10
    assert scenario.meter_total() == in_period  # nothing counted twice, nothing on the next


def test_a_switch_up_and_back_bills_each_stretch_at_its_price_on_stripe_as_on_the_emulator(
    contract,
):
    scenario = contract("one period")
    pro, team = scenario.tiers.pro, scenario.tiers.team
    api, clock = scenario.api, scenario.clock
    started = scenario.upgrade(pro)
    end = scenario.period_end()
    api.segment = "pro before the upgrade"

    day_one = clock.to(hour_floor(started) + timedelta(days=1, minutes=10))
    assert api.compute(12) == [200] * 12
    scenario.report_the_hour_of(day_one)

    # Calls 25 minutes before the upgrade and just after pressing the button are still Pro's.
    pressed = hour_floor(started) + timedelta(days=3, minutes=40, seconds=10)
    clock.to(pressed - timedelta(minutes=25))
    assert api.lookup(41) == [200] * 41
    clock.to(pressed)
    effective = scenario.switch_to(team)
    assert effective == pressed.replace(second=0) + timedelta(minutes=1)
    assert api.lookup(10) == [200] * 10
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
    renewal = scenario.close_period(end)
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
    renews = int(end.timestamp())
    next_base = [
        line for line in renewal.of(pro, team, metered=False) if line.period_start == renews
    ]
    assert pro.stripe_base_price is not None
    assert {line.price for line in next_base} == {pro.stripe_base_price.id}
    assert sum(line.cents for line in next_base) == pro.base_price_cents
    # Stripe's prorations of the two bases for the switches (see the module's docstring), and
    # nothing else.
    prorations = renewal.cents(pro, team, metered=False) - pro.base_price_cents
    assert renewal.amount_paid == renewal.total == pro.base_price_cents + sum(expected) + prorations


def test_cancel_at_period_end_bills_the_periods_usage_in_a_final_invoice_on_stripe(contract):
    scenario = contract("one period")
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock
    started = scenario.upgrade(pro)
    end = scenario.period_end()

    early = clock.to(hour_floor(started) + timedelta(days=2, hours=5))
    assert busy_stretch(api, clock, pro, computes=12) == 120
    scenario.report_the_hour_of(early)

    clock.to(hour_floor(started) + timedelta(days=12, minutes=20))
    scenario.customer_portal("cancel_at_period_end")
    account = scenario.refresh()
    assert (account.tier, account.cancel_at_period_end) == (pro, True)

    # Still Pro until the end: calls after the click, up to the last minutes, are billed.
    later = clock.to(hour_floor(started) + timedelta(days=20, hours=1))
    assert api.lookup(41) == [200] * 41
    scenario.report_the_hour_of(later)
    clock.to(end - timedelta(minutes=3))
    assert api.lookup(12) == [200] * 12
    billed = api.admitted["pro"]

    # The final invoice's 26 cents are below Stripe's minimum charge: it is finalized, not
    # necessarily charged.
    scenario.close_period(end, settles="finalized")
    account = scenario.refresh()
    assert (account.tier, account.payment_status) == (scenario.free_tier, "canceled")

    # Back on the free tier: used, never billed.
    api.segment = "free"
    clock.advance(hours=2)
    assert api.lookup(5) == [200] * 5
    clock.advance(hours=1, minutes=10)
    scenario.beat.hourly_report()
    scenario.beat.period_close_report()

    [checkout, final] = scenario.invoices()
    assert checkout.amount_paid == pro.base_price_cents
    assert final.of(pro)[0].period_end == int(end.timestamp())
    assert final.units(pro) == billed == 60 + 60 + 41 + 12
    assert final.cents(pro, metered=False) == 0  # no next period to pay for
    assert final.cents(pro) == metered_cents(pro, billed) == 26  # 73 x 0.35¢ = 25.55¢
    assert final.amount_due == 26
    assert scenario.meter_total() == billed


def test_cancelling_now_with_invoice_now_bills_the_usage_so_far_on_stripe(contract):
    scenario = contract("one period")
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock
    started = scenario.upgrade(pro)

    early = clock.to(hour_floor(started) + timedelta(days=2, hours=3))
    assert busy_stretch(api, clock, pro, computes=10) == 110
    scenario.report_the_hour_of(early)

    # Minutes before the operator cancels: their hour is still open.
    cancel_at = hour_floor(started) + timedelta(days=5, minutes=40)
    clock.to(cancel_at - timedelta(minutes=8))
    assert api.lookup(27) == [200] * 27
    billed = api.admitted["pro"]
    clock.to(cancel_at)
    # As an operator does it (the Dashboard, or the API): cancel now with a final invoice.
    scenario.sync()
    scenario.client.v1.subscriptions.cancel(
        scenario.refresh().stripe_subscription_id, params={"invoice_now": True}
    )
    scenario.reconcile()
    account = scenario.refresh()
    assert (account.tier, account.payment_status) == (scenario.free_tier, "canceled")

    api.segment = "free"
    clock.advance(minutes=3)
    assert api.lookup(6) == [200] * 6
    # The period-close job reports the last stretch within Stripe's grace hour.
    clock.to(cancel_at + HOURLY_RUN)
    scenario.beat.period_close_report()
    scenario.assert_reports_taken()
    scenario.wait_until_counted()
    clock.to(cancel_at + FINALIZATION_GRACE + timedelta(minutes=1))
    scenario.reconcile()
    [checkout, final] = scenario.invoices_settled(2)
    clock.advance(hours=2)
    scenario.beat.hourly_report()

    assert checkout.amount_paid == pro.base_price_cents
    assert final.status != "draft"
    assert final.units(pro) == billed == 60 + 50 + 27
    assert final.cents(pro, metered=False) == 0  # prorate defaults to false: no credit
    assert final.cents(pro) == metered_cents(pro, billed) == 13  # 37 x 0.35¢ = 12.95¢
    assert final.amount_due == 13
    assert scenario.meter_total() == billed


def test_a_failed_renewal_paid_after_the_grace_period_bills_the_usage_once_on_stripe(
    contract, django_capture_on_commit_callbacks, mailoutbox
):
    """Twin: test_payment_failed.py. Its first busy stretch (four days into the period) is two
    days before the period's end here, so that the usage of the next period's first eight days
    fits Stripe's 35 days too. The card that declines is Stripe's test card that attaches and
    then fails every charge, ``pm_card_chargeCustomerFail`` ("Testing: declined payments",
    https://docs.stripe.com/testing#declined-payments). Stripe retries a failed renewal on its
    own schedule ("Automate payment retries",
    https://docs.stripe.com/billing/revenue-recovery/smart-retries; "the recommended default is
    8 tries within 2 weeks"): the retries in the grace week fail on the same card, and the
    test-mode account must not be set to give up on a subscription within that week."""
    scenario = contract("two periods")
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock
    started = scenario.upgrade(pro)
    end = scenario.period_end()

    busy = clock.to(hour_floor(end) - timedelta(days=2))
    assert busy > started
    assert busy_stretch(api, clock, pro, computes=12) == 120
    scenario.report_the_hour_of(busy)
    clock.to(end - timedelta(minutes=5))
    assert api.lookup(9) == [200] * 9
    first_period = api.admitted["pro"]

    # The card now declines: the renewal fails when Stripe finalizes it.
    scenario.use_card("pm_card_chargeCustomerFail")
    failed = scenario.close_period(end, settles="failed")
    account = scenario.refresh()
    assert (account.payment_status, account.tier) == ("past_due", pro)
    assert account.grace_until is not None
    assert len([m for m in mailoutbox if "payment failed" in m.subject.lower()]) == 1
    assert (failed.status, failed.amount_paid) == ("open", 0)
    assert failed.amount_due == pro.base_price_cents + metered_cents(pro, first_period)

    # During the grace period the developer keeps Pro, and its calls are the next period's.
    api.segment = "next period"
    grace = clock.to(hour_floor(end) + timedelta(days=2, hours=1))
    assert api.compute(8) == [200] * 8
    scenario.report_the_hour_of(grace)

    # The grace period ends: the hourly job moves the account to the free tier.
    clock.to(account.grace_until + timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert account_enforce_grace_task.delay().get() == 1
    assert scenario.refresh().tier == scenario.free_tier

    # A new card in the customer portal, then "Pay" on the open invoice's page.
    clock.advance(hours=3)
    scenario.customer_portal("update_card")
    [open_invoice] = [
        i for i in scenario.browser.get("/billing/").context["invoices"] if i.status == "open"
    ]
    assert open_invoice.id == failed.id
    scenario.pay(failed.id)
    scenario.reconcile()
    account = scenario.refresh()
    assert (account.payment_status, account.tier, account.grace_until) == ("active", pro, None)

    # Back on Pro; the next period closes with its own usage only (its end lies after today:
    # nothing of it is left to report then).
    restored = clock.advance(days=1)
    assert api.lookup(20) == [200] * 20
    scenario.report_the_hour_of(restored)
    next_end = scenario.period_end()
    scenario.close_period(next_end)

    invoices = scenario.invoices()
    first = next(i for i in invoices if i.id == failed.id)
    assert first.status == "paid"
    assert first.units(pro) == first_period == 60 + 60 + 9
    assert first.amount_paid == pro.base_price_cents + metered_cents(pro, first_period) == 2900 + 10
    second = invoices[-1]
    assert second.of(pro)[0].period_end == int(next_end.timestamp())
    assert second.units(pro) == api.admitted["next period"] == 40 + 20
    assert second.amount_paid == pro.base_price_cents + metered_cents(pro, 60) == 2900
    assert sum(invoice.units(pro) for invoice in invoices) == api.total
    assert scenario.meter_total() == api.total


def test_a_report_for_a_deleted_customer_is_repaired_onto_the_new_subscription_on_stripe(
    contract, admin_client, admin_user
):
    """Twin: test_unknown_customer.py. Its first period's busy stretch (two days in) is two days
    before that period's end here, so that the second subscription's usage, eight days after it,
    fits Stripe's 35 days too. Stripe's meter error report cannot reach this machine: it is
    found among the account's v2 events and handed to the portal's receiver as the event
    destination would deliver it (``ContractScenario.deliver_meter_error``). The 120 units on
    the deleted customer's meter are not read back: its summary is not documented for a deleted
    customer; the first renewal shows them."""
    scenario = contract("two periods")
    pro, api, clock = scenario.tiers.pro, scenario.api, scenario.clock
    started = scenario.upgrade(pro)
    first_end = scenario.period_end()

    api.segment = "first period"
    early = clock.to(hour_floor(first_end) - timedelta(days=2))
    assert early > started
    assert busy_stretch(api, clock, pro, computes=12) == 120
    scenario.report_the_hour_of(early)
    scenario.close_period(first_end)
    [_, first_renewal] = scenario.invoices()
    assert (first_renewal.billing_reason, first_renewal.status) == ("subscription_cycle", "paid")
    assert first_renewal.units(pro) == 120
    assert first_renewal.cents(pro) == metered_cents(pro, 120) == 7  # 20 x 0.35¢

    # Three days into the second period: calls, then, before their hour is reported, someone
    # deletes the developer's customer in the Stripe Dashboard.
    old_customer = scenario.customer_id
    deleted_at = hour_floor(first_end) + timedelta(days=3, minutes=40)
    api.segment = "before the deletion"
    clock.to(deleted_at - timedelta(minutes=25))
    assert api.lookup(45) == [200] * 45
    clock.advance(minutes=2)
    assert api.compute(9) == [200] * 9
    clock.to(deleted_at)
    scenario.delete_in_the_dashboard()
    account = scenario.refresh()
    assert (account.tier, account.payment_status) == (scenario.free_tier, "canceled")

    api.segment = "free"
    clock.advance(minutes=5)
    assert api.lookup(3) == [200] * 3

    # The hourly report sends the subscription's last stretch to the deleted customer: Stripe
    # takes the call, then refuses the event and says so with a meter error report.
    scenario.report_the_hour_of(deleted_at)
    last = MeterReport.objects.filter(account=account).latest("window_end")
    assert (last.units, last.stripe_customer_id, last.status) == (90, old_customer, "sent")
    scenario.deliver_meter_error(last.identifier)
    [rejected] = MeterReport.objects.filter(account=account, status="rejected")
    refused = rejected.identifier
    assert refused == last.identifier
    assert rejected.rejections[0]["code"] == "meter_event_customer_not_found"
    assert StripeThinEvent.objects.filter(
        type="v1.billing.meter.error_report_triggered", processed__isnull=False
    ).exists()

    page = admin_client.get(REPORTS, {"status__exact": "rejected"}).content.decode()
    assert refused in page
    assert "Rejected by Stripe — needs an operator" in page
    assert "Stripe refused it after accepting it: meter_event_customer_not_found" in page

    # The next day the developer subscribes again, as a new customer.
    clock.to(deleted_at + timedelta(days=1))
    second_start = scenario.upgrade(pro)
    second_end = scenario.period_end()
    new_customer = scenario.customer_id
    assert new_customer != old_customer

    # The operator re-sends the account's rejected reports from the account list.
    scenario.sync()
    response = admin_client.post(
        ACCOUNTS,
        {"action": "resend_reports", "_selected_action": [account.pk], "index": 0},
        follow=True,
    )
    assert any(m.startswith("Re-sent the failed usage reports of") for m in messages_of(response))
    rejected.refresh_from_db()
    assert (rejected.status, rejected.identifier) == ("sent", f"{refused}-r1")
    assert rejected.stripe_customer_id == new_customer
    assert rejected.event_time == second_start
    entry = AuditEntry.objects.get(action="account.reports_resend")
    assert entry.actor == admin_user
    assert entry.after == {"reports": {refused: "sent"}}

    api.segment = "second subscription"
    busy = clock.to(hour_floor(second_start) + timedelta(days=4, minutes=10))
    assert busy_stretch(api, clock, pro, computes=8) == 100
    scenario.report_the_hour_of(busy)
    scenario.close_period(second_end)

    [checkout, second_renewal] = scenario.invoices()
    assert (checkout.billing_reason, checkout.amount_paid) == (
        "subscription_create",
        pro.base_price_cents,
    )
    assert (second_renewal.billing_reason, second_renewal.status) == (
        "subscription_cycle",
        "paid",
    )
    assert second_renewal.of(pro)[0].period_end == int(second_end.timestamp())
    assert second_renewal.units(pro) == 90 + 100
    assert second_renewal.cents(pro) == metered_cents(pro, 190) == 32  # 90 x 0.35¢ = 31.5¢
    assert second_renewal.amount_paid == pro.base_price_cents + 32

    paid = api.total - api.admitted["free"]
    assert paid == 120 + 90 + 100
    assert first_renewal.units(pro) + second_renewal.units(pro) == paid
    assert scenario.meter_total() == 90 + 100

    assert "$29.32" in scenario.browser.get("/billing/").content.decode()
