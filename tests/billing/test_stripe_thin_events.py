"""The thin-event receiver at /stripe/events/: Stripe's meter error reports
(``v1.billing.meter.error_report_triggered``, ``v1.billing.meter.no_meter_found``) reach the
portal from its event destination, signed; a report Stripe refused after accepting it shows as
rejected in the admin and no longer counts as billed. "Types of events v2",
https://docs.stripe.com/api/v2/core/events/event-types; "The Event object (v2)",
https://docs.stripe.com/api/v2/core/events/object; "Event destinations",
https://docs.stripe.com/event-destinations."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import MeterReport, StripeEventDestination, StripeThinEvent
from billing.services.reports import usage_report_run
from billing.services.webhook_endpoint import event_destination_ensure
from devtools.stripe_emulator.resources.v2 import iso, thin_event_create
from devtools.stripe_emulator.webhooks import sign
from portal.models import AuditEntry
from tests.billing.conftest import WebhookRelay
from tests.usage_reporting import reported_units

pytestmark = pytest.mark.django_db

RECEIVER = reverse("billing:stripe-thin-events")
CHANGELIST = reverse("admin:billing_meterreport_changelist")
ERROR_REPORT = "v1.billing.meter.error_report_triggered"


@pytest.fixture
def relay(reporting_stripe, settings) -> WebhookRelay:
    """The portal's event destination registered at the emulator, and its deliveries handed to
    the portal through Django's test client."""
    settings.SITE_URL = "http://testserver"
    event_destination_ensure()
    return WebhookRelay(reporting_stripe, None)


def _reported(account, add_usage, units: int = 7) -> MeterReport:
    add_usage(account, timezone.now() - timedelta(hours=3), units)
    usage_report_run()
    return MeterReport.objects.get(account=account)


def _customer_gone(reporting_stripe, account) -> str:
    """Stripe no longer has the account's customer (deleted in the Dashboard)."""
    customer_id = account.stripe_customer.id
    reporting_stripe.client.v1.customers.delete(customer_id)
    return customer_id


@pytest.fixture
def refused(relay, reporting_stripe, subscribed_account, add_usage) -> MeterReport:
    """A report of 7 units sent for an account whose customer Stripe deleted: the call is
    accepted, and Stripe's error report waits in the emulator's queue."""
    account = subscribed_account()
    _customer_gone(reporting_stripe, account)
    return _reported(account, add_usage)


def _error_report(emulator, data: dict, meter_id: str) -> None:
    """A meter error report as Stripe batches them (the emulator sends one per event): several
    refused events, only some named."""
    with emulator.state.store.lock:
        thin_event_create(
            emulator.state,
            ERROR_REPORT,
            data,
            {"id": meter_id, "type": "billing.meter", "url": f"/v1/billing/meters/{meter_id}"},
        )


def test_a_report_for_a_customer_stripe_does_not_know_shows_as_rejected_with_the_reason(
    relay, reporting_stripe, subscribed_account, add_usage, admin_client
):
    account = subscribed_account()
    customer_id = _customer_gone(reporting_stripe, account)
    report = _reported(account, add_usage)
    # Stripe accepted the call: the report is sent, and counted as billed, until Stripe says.
    assert report.status == MeterReport.Status.SENT
    assert reported_units(account) == 7

    relay.deliver()

    report.refresh_from_db()
    assert report.status == MeterReport.Status.REJECTED
    assert "meter_event_customer_not_found" in report.last_error
    assert f"Customer {customer_id} not found." in report.last_error
    assert reported_units(account) == 0
    page = admin_client.get(CHANGELIST, {"status__exact": "rejected"}).content.decode()
    assert report.identifier in page
    assert "Rejected by Stripe — needs an operator" in page
    event = StripeThinEvent.objects.get()
    assert event.type == ERROR_REPORT and event.processed is not None
    assert report.identifier in event.outcome


def test_a_bad_signature_is_refused_and_nothing_is_stored(refused, relay, reporting_stripe):
    report = refused
    deliveries: list[bytes] = []

    def keep(url, body, headers):
        deliveries.append(body)
        return 200

    reporting_stripe.deliver_pending(keep)
    body = deliveries[0]
    client = Client()

    forged = client.post(
        RECEIVER,
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign(body, "whsec_not_ours", int(time.time()))},
    )
    unsigned = client.post(RECEIVER, data=body, content_type="application/json")
    read = client.get(RECEIVER)

    assert (forged.status_code, unsigned.status_code, read.status_code) == (400, 400, 405)
    assert not StripeThinEvent.objects.exists()
    report.refresh_from_db()
    assert report.status == MeterReport.Status.SENT
    assert reporting_stripe.request_count("/v2/core/events") == 0


def test_the_same_event_delivered_twice_is_applied_once(refused, relay, reporting_stripe):
    report = refused
    delivered = []

    def send_and_keep(url, body, headers):
        delivered.append((url, body, headers))
        return relay.send(url, body, headers)

    reporting_stripe.deliver_pending(send_and_keep)
    again = relay.send(*delivered[0])

    assert again.status_code == 200
    assert StripeThinEvent.objects.count() == 1
    report.refresh_from_db()
    assert report.status == MeterReport.Status.REJECTED
    assert len(report.rejections) == 1
    # The second delivery did not even fetch the event again.
    assert reporting_stripe.request_count("/v2/core/events") == 1


def test_an_event_that_cannot_be_fetched_is_applied_on_stripes_next_delivery(
    refused, relay, reporting_stripe
):
    report = refused
    reporting_stripe.inject_fault("/v2/core/events", status=500, count=1)

    first = reporting_stripe.deliver_pending(relay.send)
    report.refresh_from_db()
    assert [r["status"] for r in first] == [503]
    assert report.status == MeterReport.Status.SENT
    assert StripeThinEvent.objects.get().processed is None

    second = reporting_stripe.deliver_pending(relay.send)  # Stripe retries a non-2xx delivery

    assert [r["status"] for r in second] == [200]
    report.refresh_from_db()
    assert report.status == MeterReport.Status.REJECTED


def test_a_rejected_report_whose_call_had_failed_is_not_sent_again_by_the_runs(
    relay, reporting_stripe, subscribed_account, add_usage
):
    """A call that timed out after Stripe recorded the event leaves the report failed; once
    Stripe says it refused it, the next run must not re-send the identifier (Stripe would
    answer "duplicate", which would mark it sent while it was never billed)."""
    account = subscribed_account()
    _customer_gone(reporting_stripe, account)
    reporting_stripe.inject_fault("/v1/billing/meter_events", status=500, count=5, apply=True)
    report = _reported(account, add_usage)
    assert report.status == MeterReport.Status.FAILED

    relay.deliver()
    usage_report_run()

    report.refresh_from_db()
    assert report.status == MeterReport.Status.REJECTED
    assert reported_units(account) == 0


def test_more_errors_than_samples_make_the_other_reports_of_the_window_suspect(
    relay, reporting_stripe, subscribed_account, add_usage, admin_client, admin_user, settings
):
    """Stripe names samples, not every refused event: the reports sent in the window that no
    sample names may be among the refused ones, so none of them counts as billed until an
    operator has looked; a report sent outside the window is left alone."""
    named, unnamed, earlier = subscribed_account(), subscribed_account(), subscribed_account()
    meter_id = reporting_stripe.client.v1.billing.meters.list().data[0].id
    for account in (named, unnamed, earlier):
        account.tier.stripe_meter_id = meter_id
        account.tier.save()
    early = _reported(earlier, add_usage)
    MeterReport.objects.filter(pk=early.pk).update(sent_at=timezone.now() - timedelta(hours=2))
    start = timezone.now()
    named_report, unnamed_report = _reported(named, add_usage), _reported(unnamed, add_usage, 5)
    _error_report(
        reporting_stripe,
        {
            "developer_message_summary": "There are 3 invalid events",
            "reason": {
                "error_count": 3,
                "error_types": [
                    {
                        "code": "meter_event_customer_not_found",
                        "error_count": 3,
                        "sample_errors": [
                            {
                                "error_message": "Customer cus_x not found.",
                                "request": {"identifier": named_report.identifier},
                            }
                        ],
                    }
                ],
            },
            "validation_start": iso(int(start.timestamp())),
            "validation_end": iso(int(timezone.now().timestamp()) + 1),
        },
        meter_id,
    )

    relay.deliver()

    statuses = dict(MeterReport.objects.values_list("identifier", "status"))
    assert statuses == {
        named_report.identifier: "rejected",
        unnamed_report.identifier: "suspect",
        early.identifier: "sent",
    }
    unnamed_report.refresh_from_db()
    assert "meter event summary" in unnamed_report.last_error
    assert reported_units(unnamed) == 0

    page = admin_client.post(
        CHANGELIST,
        {"action": "confirm_received", "_selected_action": [unnamed_report.pk]},
        follow=True,
    ).content.decode()

    assert f"Marked {unnamed_report.identifier} sent: Stripe has its units." in page
    unnamed_report.refresh_from_db()
    assert unnamed_report.status == MeterReport.Status.SENT
    assert reported_units(unnamed) == 5
    entry = AuditEntry.objects.get(action="meter_report.confirm")
    assert (entry.actor, entry.after) == (admin_user, {"status": "sent"})


def test_an_error_report_on_another_meter_makes_nothing_suspect(
    relay, reporting_stripe, subscribed_account, add_usage
):
    account = subscribed_account()
    report = _reported(account, add_usage)
    _error_report(
        reporting_stripe,
        {
            "reason": {
                "error_count": 2,
                "error_types": [{"code": "archived_meter", "error_count": 2, "sample_errors": []}],
            },
            "validation_start": iso(int(timezone.now().timestamp()) - 60),
            "validation_end": iso(int(timezone.now().timestamp()) + 1),
        },
        "mtr_someone_else",
    )

    relay.deliver()

    report.refresh_from_db()
    assert report.status == MeterReport.Status.SENT
    assert "2 refused event(s) not named; 0 report(s)" in StripeThinEvent.objects.get().outcome


def test_a_ping_is_recorded_and_changes_nothing(
    relay, reporting_stripe, subscribed_account, add_usage
):
    report = _reported(subscribed_account(), add_usage)
    destination = StripeEventDestination.objects.get()
    reporting_stripe.client.v2.core.event_destinations.ping(destination.stripe_id)

    relay.deliver()

    event = StripeThinEvent.objects.get()
    assert event.type == "v2.core.event_destination.ping"
    assert event.outcome == "Nothing to do for this type."
    report.refresh_from_db()
    assert report.status == MeterReport.Status.SENT
