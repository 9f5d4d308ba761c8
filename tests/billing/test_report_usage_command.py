"""`manage.py report_usage`: the hourly reporting job, run by hand."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing.services.reports import runs
from tests.usage_reporting import stripe_total

pytestmark = pytest.mark.django_db


def test_the_command_reports_closed_windows_and_says_what_it_did(
    reporting_stripe, subscribed_account, add_usage
):
    account = subscribed_account()
    add_usage(account, timezone.now() - timedelta(hours=3), 21)
    out = StringIO()

    call_command("report_usage", stdout=out)

    assert "1 account(s): 1 report(s) sent (21 units), 0 failed, 0 stale." in out.getvalue()
    assert stripe_total(reporting_stripe, account) == 21


def test_running_it_again_sends_nothing(reporting_stripe, subscribed_account, add_usage):
    add_usage(subscribed_account(), timezone.now() - timedelta(hours=3), 21)
    call_command("report_usage", stdout=StringIO())
    out = StringIO()

    call_command("report_usage", stdout=out)

    assert "0 account(s): 0 report(s) sent (0 units)" in out.getvalue()
    assert reporting_stripe.request_count("/v1/billing/meter_events") == 1


def test_failures_are_listed_and_the_exit_status_says_so(
    reporting_stripe, subscribed_account, add_usage, monkeypatch, settings
):
    settings.USAGE_REPORT_BACKOFF_MS = 0
    first, second = subscribed_account(), subscribed_account()
    add_usage(first, timezone.now() - timedelta(hours=3), 1)
    add_usage(second, timezone.now() - timedelta(hours=3), 2)
    reporting_stripe.inject_fault("/v1/billing/meter_events", status=500, count=5)
    out = StringIO()

    call_command("report_usage", stdout=out)  # the first account's tries all fail

    assert ": failed: APIError: HTTP 500" in out.getvalue()
    assert "2 account(s): 1 report(s) sent (2 units), 1 failed, 0 stale." in out.getvalue()

    monkeypatch.setattr(runs, "usage_report_account", _crash)
    with pytest.raises(CommandError, match="1 account\\(s\\) failed"):
        call_command("report_usage", stdout=StringIO())


def _crash(**kwargs):
    raise RuntimeError("database went away")
