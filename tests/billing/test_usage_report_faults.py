"""The usage report run while Stripe fails: 500s, 429s and calls that time out (some of which
Stripe still records). After the retries Stripe's total equals the rolled-up total, exactly."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import MeterReport
from billing.services.reports import usage_report_run
from tests.usage_reporting import hour_floor, reported_units, stripe_total

pytestmark = pytest.mark.django_db

METER_EVENTS = "/v1/billing/meter_events"


def test_thirty_percent_failures_change_nothing_in_what_stripe_bills(
    reporting_stripe, subscribed_account, add_usage, settings
):
    settings.STRIPE_TIMEOUT_SECONDS = 0.3
    accounts = [subscribed_account() for _ in range(6)]
    base = hour_floor(timezone.now()) - timedelta(hours=6)
    expected = {}
    for number, account in enumerate(accounts, start=1):
        for hour in range(5):
            add_usage(account, base + timedelta(hours=hour, minutes=number * 3), number + hour)
        expected[account.pk] = sum(number + hour for hour in range(5))
    # About 30 % of meter event calls fail, a third each way; of the timeouts, half are still
    # recorded by Stripe (the client cannot tell which).
    for options in (
        {"status": 500, "fraction": 0.1, "seed": 1},
        {"status": 429, "fraction": 0.11, "seed": 2, "retry_after": 0},
        {"status": None, "delay": 0.5, "apply": True, "fraction": 0.07, "seed": 3},
        {"status": None, "delay": 0.5, "apply": False, "fraction": 0.08, "seed": 4},
    ):
        reporting_stripe.inject_fault(METER_EVENTS, **options)

    for hour in range(1, 6):  # the hourly runs
        usage_report_run(now=base + timedelta(hours=hour, minutes=6))
    # The beat keeps running; whatever a run left failed, a later one sends.
    for _ in range(5):
        if not MeterReport.objects.exclude(status=MeterReport.Status.SENT).exists():
            break
        usage_report_run()

    faults = reporting_stripe.state.faults.rules
    assert all(rule.fired for rule in faults), [rule.describe() for rule in faults]
    assert not MeterReport.objects.exclude(status=MeterReport.Status.SENT).exists()
    for account in accounts:
        assert stripe_total(reporting_stripe, account) == expected[account.pk]
        assert reported_units(account) == expected[account.pk]
    assert MeterReport.objects.count() == 30


def test_a_500_on_the_first_send_is_retried_under_a_new_key_and_billed_once(
    reporting_stripe, subscribed_account, add_usage
):
    # Stripe saves a request's first answer, a 500 included, under its Idempotency-Key and
    # replays it for 24 hours (docs/stripe.md): a retry under the same key never gets through.
    account = subscribed_account()
    base = hour_floor(timezone.now()) - timedelta(hours=2)
    add_usage(account, base + timedelta(minutes=7), 13)
    reporting_stripe.inject_fault(METER_EVENTS, status=500, count=1, apply=True)

    usage_report_run(now=base + timedelta(hours=1, minutes=6))

    report = MeterReport.objects.get(account=account)
    assert report.status == MeterReport.Status.SENT
    assert report.attempts == 2
    assert stripe_total(reporting_stripe, account) == 13


def test_a_500_on_every_try_of_a_run_leaves_the_report_for_the_next_run(
    reporting_stripe, subscribed_account, add_usage
):
    account = subscribed_account()
    base = hour_floor(timezone.now()) - timedelta(hours=2)
    add_usage(account, base + timedelta(minutes=7), 4)
    reporting_stripe.inject_fault(METER_EVENTS, status=500, count=5)

    usage_report_run(now=base + timedelta(hours=1, minutes=6))
    assert MeterReport.objects.get(account=account).status == MeterReport.Status.FAILED

    usage_report_run(now=base + timedelta(hours=1, minutes=30))

    assert MeterReport.objects.get(account=account).status == MeterReport.Status.SENT
    assert stripe_total(reporting_stripe, account) == 4
