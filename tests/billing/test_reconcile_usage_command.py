"""manage.py reconcile_usage"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing.models import MeterReport, UsageDiscrepancy
from tests.usage_ledger import window_report
from tests.usage_reporting import hour_floor, stripe_total

pytestmark = pytest.mark.django_db


def lost_report(account, *, hours_ago=4, units=6):
    """A report our ledger marked sent two hours ago, which Stripe never recorded."""
    return window_report(
        account,
        hour_floor(timezone.now()) - timedelta(hours=hours_ago),
        units,
        status=MeterReport.Status.SENT,
        attempts=1,
        sent_at=timezone.now() - timedelta(hours=2),
    )


def test_the_command_re_sends_what_stripe_lost_and_says_so(reporting_stripe, subscribed_account):
    account = subscribed_account()
    report = lost_report(account)
    out = StringIO()

    call_command("reconcile_usage", stdout=out)

    assert stripe_total(reporting_stripe, account) == 6
    assert f"re-sent {report.identifier}" in out.getvalue()
    assert "2 period(s) compared, 1 report(s) re-sent, 0 open discrepancy(ies)." in out.getvalue()


def test_the_command_can_be_limited_to_accounts(reporting_stripe, subscribed_account):
    account, other = subscribed_account(), subscribed_account()
    lost_report(account)
    lost_report(other)

    call_command("reconcile_usage", "--account", str(account.pk), stdout=StringIO())

    assert stripe_total(reporting_stripe, account) == 6
    assert stripe_total(reporting_stripe, other) == 0
    assert not UsageDiscrepancy.objects.filter(account=other).exists()


def test_the_command_fails_clearly_when_stripe_is_down(reporting_stripe, subscribed_account):
    lost_report(subscribed_account())
    reporting_stripe.inject_fault("/v1/billing/meters", status=500, count=1)

    with pytest.raises(CommandError, match="nothing changed"):
        call_command("reconcile_usage", stdout=StringIO())

    assert not UsageDiscrepancy.objects.exists()
