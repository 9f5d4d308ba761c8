"""A crash between Stripe's answer and our mark, and a re-run: the same identifier goes again,
Stripe counts it once, and our ledger ends up saying sent."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import MeterReport
from billing.services.reports import sending, usage_report_run
from tests.usage_reporting import reported_units, stripe_total

pytestmark = pytest.mark.django_db

METER_EVENTS = "/v1/billing/meter_events"


def test_a_crash_after_stripe_accepted_and_before_the_mark_is_repaired_by_the_next_run(
    reporting_stripe, subscribed_account, add_usage, monkeypatch
):
    account = subscribed_account()
    add_usage(account, timezone.now() - timedelta(hours=3), 17)
    mark_sent = sending._mark_sent

    def crash(*args, **kwargs):
        raise RuntimeError("worker died before writing down that Stripe has it")

    monkeypatch.setattr(sending, "_mark_sent", crash)
    first = usage_report_run()

    report = MeterReport.objects.get(account=account)
    assert first.errors == 1
    assert (report.status, report.attempts) == (MeterReport.Status.PENDING, 1)
    assert stripe_total(reporting_stripe, account) == 17  # Stripe has it already

    monkeypatch.setattr(sending, "_mark_sent", mark_sent)
    usage_report_run()

    report.refresh_from_db()
    assert report.status == MeterReport.Status.SENT
    assert reporting_stripe.request_count(METER_EVENTS) == 2
    assert stripe_total(reporting_stripe, account) == reported_units(account) == 17


def test_stripe_refusing_a_known_identifier_means_it_was_already_billed(
    reporting_stripe, subscribed_account, add_usage, monkeypatch
):
    """Stripe's idempotency keys can expire before its identifiers do: then the answer to a
    re-send is "an event already exists with identifier ...", which is a success."""
    account = subscribed_account()
    add_usage(account, timezone.now() - timedelta(hours=3), 5)
    monkeypatch.setattr(sending, "_customer_slot", _slot_taken)
    usage_report_run()  # writes the report, but another run holds the customer's slot
    report = MeterReport.objects.get(account=account)
    monkeypatch.undo()
    # That other run's call got through (with its own idempotency key).
    reporting_stripe.client.v1.billing.meter_events.create(
        params={
            "event_name": settings.STRIPE_METER_EVENT_NAME,
            "identifier": report.identifier,
            "payload": {"stripe_customer_id": account.stripe_customer.id, "value": "5"},
            "timestamp": int(report.event_time.timestamp()),
        }
    )

    usage_report_run()

    report.refresh_from_db()
    assert report.status == MeterReport.Status.SENT
    assert "already had this identifier" in report.last_error
    assert stripe_total(reporting_stripe, account) == 5


def _slot_taken(account_id):
    from contextlib import nullcontext

    return nullcontext(False)
