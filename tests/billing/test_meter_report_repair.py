"""Repairing a report Stripe rejected: the operator gives the account a customer Stripe has and
re-sends the report, which goes under a new identifier (Stripe holds the rejected one: a re-send
under it would be answered "duplicate" and never billed) to the account's current customer.
Stripe's meter then has the units once, for the new customer."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing.models import MeterReport
from billing.services.reports import account_meter_reports_resend, usage_report_run
from billing.services.webhook_endpoint import event_destination_ensure
from portal.models import AuditEntry
from tests.billing.conftest import WebhookRelay
from tests.factories import StripeCustomerFactory
from tests.usage_reporting import reported_units, stripe_subscription_started, stripe_total

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:billing_meterreport_changelist")
METER_EVENTS = "/v1/billing/meter_events"
MINUTE = timedelta(minutes=1)


@pytest.fixture
def rejected(reporting_stripe, subscribed_account, add_usage, settings):
    """An account whose customer Stripe deleted, its 7 units reported, and Stripe's error report
    delivered: the report is rejected."""
    settings.SITE_URL = "http://testserver"
    event_destination_ensure()
    account = subscribed_account()
    old_customer = account.stripe_customer.id
    reporting_stripe.client.v1.customers.delete(old_customer)
    add_usage(account, timezone.now() - timedelta(hours=3), 7)
    usage_report_run()
    relay = WebhookRelay(reporting_stripe, None)
    relay.deliver()
    report = MeterReport.objects.get(account=account)
    assert report.status == MeterReport.Status.REJECTED
    return account, report, relay


def _new_customer(reporting_stripe, account) -> str:
    """What the operator does first: the account gets a Stripe customer that exists."""
    customer = reporting_stripe.client.v1.customers.create(params={"email": "new@example.com"})
    account.stripe_customer = StripeCustomerFactory(id=customer.id)
    account.save(update_fields=["stripe_customer"])
    return customer.id


def _resend(admin_client, report) -> str:
    return (
        admin_client.post(
            CHANGELIST,
            {"action": "resend_failed", "_selected_action": [report.pk]},
            follow=True,
        )
        .content.decode()
        .replace("&#x27;", "'")
    )


def test_a_repaired_report_reaches_the_new_customer_once(
    rejected, reporting_stripe, admin_client, admin_user
):
    account, report, relay = rejected
    old_identifier, old_customer = report.identifier, report.stripe_customer_id
    new_customer = _new_customer(reporting_stripe, account)

    page = _resend(admin_client, report)

    report.refresh_from_db()
    assert report.status == MeterReport.Status.SENT
    assert report.identifier == f"{old_identifier}-r1"
    assert report.stripe_customer_id == new_customer
    assert (
        f"Sent {report.identifier} (Stripe refused {old_identifier}) to {new_customer}: "
        "Stripe has its 7 units." in page
    )
    assert [r["identifier"] for r in report.rejections] == [old_identifier]
    assert report.rejections[0]["customer"] == old_customer
    assert stripe_total(reporting_stripe, account) == 7
    assert reporting_stripe.meter_event_total(old_customer, settings.STRIPE_METER_EVENT_NAME) == 0
    assert reported_units(account) == 7
    entry = AuditEntry.objects.get(action="meter_report.resend")
    assert (entry.actor, entry.target) == (admin_user, old_identifier)
    assert entry.before["identifier"] == old_identifier
    assert (entry.after["identifier"], entry.after["customer"]) == (report.identifier, new_customer)

    # Nothing counts it twice afterwards: no error report comes for the new identifier, the
    # runs leave it alone, and a second re-send is refused without a call.
    relay.deliver()
    calls = reporting_stripe.request_count(METER_EVENTS)
    usage_report_run()
    again = _resend(admin_client, report)
    report.refresh_from_db()
    assert report.status == MeterReport.Status.SENT
    assert f"Not sent again: {report.identifier} was already sent" in again
    assert reporting_stripe.request_count(METER_EVENTS) == calls
    assert stripe_total(reporting_stripe, account) == 7


def test_the_meter_summary_of_the_new_customer_holds_exactly_the_units(
    rejected, reporting_stripe, admin_client
):
    account, report, _ = rejected
    new_customer = _new_customer(reporting_stripe, account)
    _resend(admin_client, report)
    report.refresh_from_db()
    meter = reporting_stripe.client.v1.billing.meters.list().data[0]
    # Summaries take whole minutes; the window's event is at its last second.
    start = int(report.window_start.timestamp()) // 60 * 60
    end = -(-int(report.window_end.timestamp()) // 60) * 60

    summaries = reporting_stripe.client.v1.billing.meters.event_summaries.list(
        meter.id, params={"customer": new_customer, "start_time": start, "end_time": end}
    )

    assert [s.aggregated_value for s in summaries.data] == [7.0]


def test_resending_to_the_customer_stripe_did_not_find_is_refused_without_a_call(
    rejected, reporting_stripe, admin_client
):
    _, report, _ = rejected
    calls = reporting_stripe.request_count(METER_EVENTS)

    page = _resend(admin_client, report)

    report.refresh_from_db()
    assert report.status == MeterReport.Status.REJECTED
    assert "Stripe did not find customer" in page
    assert "give the account a customer Stripe has first" in page
    assert reporting_stripe.request_count(METER_EVENTS) == calls


def test_the_automatic_runs_leave_a_rejected_report_to_the_operator(rejected, reporting_stripe):
    account, report, _ = rejected
    _new_customer(reporting_stripe, account)
    calls = reporting_stripe.request_count(METER_EVENTS)

    usage_report_run()

    report.refresh_from_db()
    assert report.status == MeterReport.Status.REJECTED
    assert reporting_stripe.request_count(METER_EVENTS) == calls


def test_the_accounts_resend_action_repairs_rejected_reports(
    rejected, reporting_stripe, admin_user
):
    account, report, _ = rejected
    old_identifier = report.identifier
    _new_customer(reporting_stripe, account)

    entry = account_meter_reports_resend(account=account, actor=admin_user)

    assert entry is not None
    assert entry.before == {"reports": {old_identifier: "rejected"}}
    assert entry.after == {"reports": {old_identifier: "sent"}}
    assert stripe_total(reporting_stripe, account) == 7


def test_a_resend_stripe_rejects_again_gets_the_next_identifier(
    rejected, reporting_stripe, admin_client
):
    """The new customer is deleted too before the re-send lands: Stripe refuses the second
    identifier; the next repair goes as -r2."""
    account, report, relay = rejected
    first = report.identifier
    second_customer = _new_customer(reporting_stripe, account)
    reporting_stripe.client.v1.customers.delete(second_customer)
    _resend(admin_client, report)
    relay.deliver()
    report.refresh_from_db()
    assert (report.status, report.identifier) == (MeterReport.Status.REJECTED, f"{first}-r1")

    _new_customer(reporting_stripe, account)
    _resend(admin_client, report)

    report.refresh_from_db()
    assert (report.status, report.identifier) == (MeterReport.Status.SENT, f"{first}-r2")
    assert [r["identifier"] for r in report.rejections] == [first, f"{first}-r1"]
    assert stripe_total(reporting_stripe, account) == 7


def test_a_suspect_report_the_operator_found_missing_is_resent_under_a_new_identifier(
    reporting_stripe, subscribed_account, add_usage, admin_client
):
    """Stripe refused the event without naming it (its report held samples only): the report
    was made suspect, the operator found its units missing from the meter summary, re-sends."""
    account = subscribed_account()
    reporting_stripe.client.v1.customers.delete(account.stripe_customer.id)
    add_usage(account, timezone.now() - timedelta(hours=3), 4)
    usage_report_run()
    report = MeterReport.objects.get(account=account)
    MeterReport.objects.filter(pk=report.pk).update(status=MeterReport.Status.SUSPECT)
    old_identifier = report.identifier
    _new_customer(reporting_stripe, account)

    _resend(admin_client, report)

    report.refresh_from_db()
    assert (report.status, report.identifier) == (MeterReport.Status.SENT, f"{old_identifier}-r1")
    assert report.rejections[0]["code"] == "not_in_meter_summary"
    assert stripe_total(reporting_stripe, account) == 4


def _resubscribed(account, started) -> None:
    """The account's running subscription, on its current customer, began at ``started``
    (dj-stripe's copy and the account's period, as the webhooks leave them)."""
    account.stripe_subscription_id = f"sub_{account.stripe_customer.id[4:]}"
    account.period_start, account.period_end = started, started + timedelta(days=30)
    account.save(update_fields=["stripe_subscription_id", "period_start", "period_end"])
    stripe_subscription_started(account, started)


def _summary(reporting_stripe, customer: str, start, end) -> float:
    """The customer's units on our meter dated in [start, end) (whole minutes)."""
    meter = reporting_stripe.client.v1.billing.meters.list().data[0]
    summaries = reporting_stripe.client.v1.billing.meters.event_summaries.list(
        meter.id,
        params={
            "customer": customer,
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
        },
    )
    return sum(s.aggregated_value for s in summaries.data)


def test_a_report_resent_to_a_customer_subscribed_after_its_window_is_dated_into_that_subscription(
    rejected, reporting_stripe, admin_client
):
    """Stripe bills a new subscription's metered price for usage dated from its start only: the
    re-sent units are dated when the new subscription's current period began, and so billed on
    its invoice (a period late, at today's tier, rather than never)."""
    account, report, _ = rejected
    window_minute = report.event_time.replace(second=0)
    new_customer = _new_customer(reporting_stripe, account)
    resubscribed = window_minute + 2 * MINUTE
    _resubscribed(account, resubscribed)

    _resend(admin_client, report)

    report.refresh_from_db()
    assert (report.status, report.stripe_customer_id) == (MeterReport.Status.SENT, new_customer)
    assert report.event_time == resubscribed
    assert _summary(reporting_stripe, new_customer, resubscribed, resubscribed + MINUTE) == 7
    assert _summary(reporting_stripe, new_customer, window_minute, resubscribed) == 0
    # The audit log shows the date moving.
    entry = AuditEntry.objects.get(action="meter_report.resend")
    assert entry.before["dated"] == (window_minute + timedelta(seconds=59)).isoformat()
    assert entry.after["dated"] == resubscribed.isoformat()


@pytest.mark.parametrize(
    "whose",
    ["the new customer's, begun before the window", "the old customer's"],
)
def test_a_report_resent_keeps_its_windows_timestamp_when_no_newer_subscription_needs_it(
    rejected, reporting_stripe, admin_client, whose
):
    account, report, _ = rejected
    window_minute = report.event_time.replace(second=0)
    if whose == "the old customer's":
        # dj-stripe's copy names the deleted customer: the new one has no subscription here.
        _resubscribed(account, window_minute + 2 * MINUTE)
        new_customer = _new_customer(reporting_stripe, account)
    else:
        new_customer = _new_customer(reporting_stripe, account)
        _resubscribed(account, window_minute - timedelta(days=2))

    _resend(admin_client, report)

    report.refresh_from_db()
    assert (report.status, report.not_before) == (MeterReport.Status.SENT, None)
    assert report.event_time == window_minute + timedelta(seconds=59)
    assert _summary(reporting_stripe, new_customer, window_minute, window_minute + MINUTE) == 7
