"""Two report runs at once (two beat ticks overlapping, two workers): each window is written
once, each rollup claimed once, and Stripe's total equals the rolled-up total exactly."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import MeterReport
from billing.services.reports import usage_report_run
from metering.models import UsageRollup
from tests.usage_reporting import hour_floor, reported_units, stripe_total

METER_EVENTS = "/v1/billing/meter_events"


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_report_every_unit_exactly_once(
    reporting_stripe, subscribed_account, add_usage
):
    accounts = [subscribed_account() for _ in range(8)]
    base = hour_floor(timezone.now()) - timedelta(hours=4)
    for number, account in enumerate(accounts, start=1):
        for minute in range(0, 180, 7):
            add_usage(account, base + timedelta(minutes=minute), number)
    # Slow answers keep both runs in flight together for each account.
    reporting_stripe.inject_fault(METER_EVENTS, status=None, delay=0.05, apply=True, fraction=1)
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            usage_report_run()
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # A run that found the customer's slot taken left the report to the next run.
    usage_report_run()

    assert failures == []
    assert not UsageRollup.objects.filter(meter_report__isnull=True).exists()
    assert not MeterReport.objects.exclude(status=MeterReport.Status.SENT).exists()
    assert MeterReport.objects.count() == len(accounts)  # one window each: [period start, hour)
    for number, account in enumerate(accounts, start=1):
        expected = number * len(range(0, 180, 7))
        assert stripe_total(reporting_stripe, account) == reported_units(account) == expected
    # No window was sent by both runs at once.
    assert reporting_stripe.request_count(METER_EVENTS) == len(accounts)
