"""The daily usage reconcile: our report ledger against Stripe's meter event summaries. What
Stripe lost is re-sent with its own identifier and counted once; whatever else differs is
flagged with its amount and nothing is sent (billing/services/usage_reconcile.py; the Stripe
behaviours relied on are in docs/stripe.md)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone
from stripe.billing import MeterEventSummaryService

from billing.models import MeterReport, UsageDiscrepancy
from billing.services.reports import usage_report_send
from billing.services.usage_reconcile import UsageCheck, period_bill_cents, usage_reconcile
from portal.models import AuditEntry
from portal.periods import add_months
from tests.usage_ledger import window_report
from tests.usage_reporting import hour_floor, stripe_total

pytestmark = pytest.mark.django_db

METER_EVENTS = "/v1/billing/meter_events"


def ledger_report(account, start, units, *, reaches_stripe=True):
    """A report of the window [start, start + 1 h). ``reaches_stripe`` False: our ledger says
    sent, but Stripe never recorded the event (the lost call of the scenario)."""
    report = window_report(account, start, units)
    if reaches_stripe:
        report = usage_report_send(report_id=report.pk)
        assert report.status == MeterReport.Status.SENT
    else:
        MeterReport.objects.filter(pk=report.pk).update(
            status=MeterReport.Status.SENT, sent_at=timezone.now(), attempts=1
        )
    return report


def anchored_40_days_ago(account):
    """Move the account's billing anchor to 40 days ago, at 17 min 23 s past an hour (a period
    starts at any second), so its previous period ended about ten days ago."""
    anchor = hour_floor(timezone.now() - timedelta(days=40)) + timedelta(minutes=17, seconds=23)
    account.period_start, account.period_end = anchor, add_months(anchor, 1)
    account.save()
    return account


def later(hours=2):
    """A run once Stripe has had time to aggregate what was sent."""
    return timezone.now() + timedelta(hours=hours)


def checks_of(account, checks):
    return [check for check in checks if check.account_id == account.pk]


def test_a_report_stripe_lost_is_re_sent_once_and_a_second_run_changes_nothing(
    reporting_stripe, subscribed_account
):
    account = subscribed_account()
    base = hour_floor(timezone.now()) - timedelta(hours=5)
    ledger_report(account, base, 7)
    lost = ledger_report(account, base + timedelta(hours=1), 13, reaches_stripe=False)
    ledger_report(account, base + timedelta(hours=2), 5)
    assert stripe_total(reporting_stripe, account) == 12

    checks = usage_reconcile(now=later())

    assert stripe_total(reporting_stripe, account) == 25
    current = checks_of(account, checks)[-1]
    assert current.outcome == UsageCheck.Outcome.DISCREPANCY
    assert current.resent == [lost.identifier]
    assert (current.ours_units, current.stripe_units) == (25, 12)
    lost.refresh_from_db()
    assert lost.status == MeterReport.Status.SENT
    row = UsageDiscrepancy.objects.get(account=account)
    assert (row.difference, row.resolved is not None) == (-13, True)
    assert f"re-sent {lost.identifier} (13 units)" in row.resolution
    entry = AuditEntry.objects.get(action="meter_report.reconcile_resend")
    assert (entry.target, entry.actor, entry.after["status"]) == (lost.identifier, None, "sent")

    posts = reporting_stripe.request_count(METER_EVENTS)
    again = usage_reconcile(now=later())

    assert [check.outcome for check in checks_of(account, again)] == ["agrees", "agrees"]
    assert reporting_stripe.request_count(METER_EVENTS) == posts
    assert stripe_total(reporting_stripe, account) == 25
    assert UsageDiscrepancy.objects.count() == 1


def test_a_lost_report_whose_every_send_failed_and_was_marked_sent_by_hand(
    reporting_stripe, subscribed_account
):
    # The ledger was wrong: every try got a 500 Stripe rolled back, then someone set it sent.
    account = subscribed_account()
    start = hour_floor(timezone.now()) - timedelta(hours=3)
    report = window_report(account, start, 9)
    reporting_stripe.inject_fault(METER_EVENTS, status=500, count=5)
    assert usage_report_send(report_id=report.pk).status == MeterReport.Status.FAILED
    MeterReport.objects.filter(pk=report.pk).update(
        status=MeterReport.Status.SENT, sent_at=timezone.now()
    )
    reporting_stripe.clear_faults()

    usage_reconcile(now=later())

    assert stripe_total(reporting_stripe, account) == 9
    assert UsageDiscrepancy.objects.get(account=account).resolved is not None


def test_stripe_having_more_than_us_is_flagged_with_its_amount_and_nothing_is_sent(
    reporting_stripe, subscribed_account
):
    account = subscribed_account()
    tier = account.tier
    tier.included_units = 10
    tier.overage_unit_price_cents = Decimal("2.5")
    tier.save()
    base = hour_floor(timezone.now()) - timedelta(hours=4)
    ledger_report(account, base, 12)
    # An event we never reported (another system, a replayed script), dated in the period.
    reporting_stripe.client.v1.billing.meter_events.create(
        params={
            "event_name": settings.STRIPE_METER_EVENT_NAME,
            "identifier": "not-ours-1",
            "payload": {"stripe_customer_id": account.stripe_customer.id, "value": "4"},
            "timestamp": int((base + timedelta(hours=1, minutes=30)).timestamp()),
        }
    )
    posts = reporting_stripe.request_count(METER_EVENTS)

    usage_reconcile(now=later())
    usage_reconcile(now=later())  # a second run updates the same row

    assert reporting_stripe.request_count(METER_EVENTS) == posts
    row = UsageDiscrepancy.objects.get(account=account)
    assert (row.ours_units, row.stripe_units, row.difference) == (12, 16, 4)
    # Stripe would bill 6 units past the 10 included, our ledger supports 2: 4 x 2.5 cents.
    assert row.amount_cents == period_bill_cents(tier, 16) - period_bill_cents(tier, 12) == 10
    assert row.resolved is None
    assert "Stripe has 4 units more than our reports; nothing sent" in row.resolution


def test_stripe_knowing_the_identifier_but_not_the_units_is_flagged_never_sent_twice(
    reporting_stripe, subscribed_account
):
    # Stripe refused the event in its asynchronous validation: it keeps the identifier (a
    # re-send is a duplicate) but never counts the units.
    account = subscribed_account()
    report = ledger_report(account, hour_floor(timezone.now()) - timedelta(hours=3), 8)
    store = reporting_stripe.state.store
    with store.lock:
        store.meter_events[:] = [
            e for e in store.meter_events if e["identifier"] != report.identifier
        ]

    usage_reconcile(now=later())

    assert stripe_total(reporting_stripe, account) == 0
    row = UsageDiscrepancy.objects.get(account=account)
    assert (row.difference, row.resolved) == (-8, None)
    assert f"Stripe already has the identifier {report.identifier}" in row.resolution


def test_a_report_sent_moments_ago_is_left_to_settle(reporting_stripe, subscribed_account):
    # Summaries are eventually consistent: a report sent within the last hour may not show yet.
    account = subscribed_account()
    start = hour_floor(timezone.now()) - timedelta(hours=3)
    lost = ledger_report(account, start, 6, reaches_stripe=False)
    MeterReport.objects.filter(pk=lost.pk).update(sent_at=timezone.now() + timedelta(minutes=90))
    posts = reporting_stripe.request_count(METER_EVENTS)

    checks = usage_reconcile(now=later())

    assert checks_of(account, checks)[-1].outcome == UsageCheck.Outcome.SETTLING
    assert reporting_stripe.request_count(METER_EVENTS) == posts
    assert not UsageDiscrepancy.objects.exists()


def test_units_re_sent_after_the_invoice_was_finalized_stay_open_for_an_operator(
    reporting_stripe, subscribed_account
):
    # The previous period ended ten days ago; its invoice was finalized an hour later.
    account = anchored_40_days_ago(subscribed_account())
    previous_start, previous_end = account.current_period(
        account.current_period()[0] - timedelta(seconds=1)
    )
    lost = ledger_report(
        account, hour_floor(previous_end) - timedelta(hours=5), 11, reaches_stripe=False
    )

    checks = usage_reconcile(now=later())

    assert stripe_total(reporting_stripe, account) == 11
    previous = checks_of(account, checks)[0]
    assert (previous.period_start, previous.resent) == (previous_start, [lost.identifier])
    row = UsageDiscrepancy.objects.get(account=account)
    assert (row.missed_invoice, row.resolved) == (True, None)
    assert "invoice was finalized before these units reached Stripe" in row.resolution

    usage_reconcile(now=later())  # Stripe's summary agrees now, the invoice still does not

    row.refresh_from_db()
    assert row.resolved is None


@pytest.fixture
def summary_requests(monkeypatch):
    """The parameters of every meter event summary request, as sent."""
    sent: list[dict] = []
    original = MeterEventSummaryService.list

    def recording(self, id, params, options=None):
        sent.append(dict(params))
        return original(self, id, params, options)

    monkeypatch.setattr(MeterEventSummaryService, "list", recording)
    return sent


def test_a_period_boundary_inside_an_hour_is_compared_without_its_neighbour(
    reporting_stripe, subscribed_account, summary_requests
):
    # Periods start at any second; the hour holding the boundary has events of both periods.
    # Each period is compared over its own minutes, so neither borrows the other's units.
    account = anchored_40_days_ago(subscribed_account())
    current_start = account.current_period()[0]
    boundary_hour = hour_floor(current_start)
    # The previous period's final window [hour, boundary) and the current one's first window.
    final = window_report(account, boundary_hour, 3, end=current_start)
    usage_report_send(report_id=final.pk)
    lost_first = window_report(
        account,
        current_start,
        4,
        end=boundary_hour + timedelta(hours=1),
        status=MeterReport.Status.SENT,
        sent_at=timezone.now(),
    )

    checks = usage_reconcile(now=later())

    previous, current = checks_of(account, checks)
    assert (previous.outcome, previous.ours_units, previous.stripe_units) == ("agrees", 3, 3)
    assert current.resent == [lost_first.identifier]
    assert stripe_total(reporting_stripe, account) == 7
    # Stripe's rule for the times asked: whole minutes, and whole hours when grouped by hour.
    grouped = [p for p in summary_requests if p.get("value_grouping_window") == "hour"]
    assert grouped
    for params in summary_requests:
        step = 3600 if params in grouped else 60
        assert params["start_time"] % step == 0 and params["end_time"] % step == 0, params
    # The current period's partial first hour, from its first whole minute, asked on its own.
    first_minute = int(current_start.timestamp()) // 60 * 60 + 60
    assert any(p["start_time"] == first_minute and p not in grouped for p in summary_requests)
