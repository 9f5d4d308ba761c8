"""`manage.py send_usage_alerts`: the 5-minute alert job, run by hand."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from metering.models import UsageRollup
from tests.factories import AccountFactory, TierFactory


@pytest.mark.django_db
def test_the_command_emails_crossed_thresholds_once_and_says_so():
    account = AccountFactory(
        tier=TierFactory(included_units=100), period_start=timezone.now() - timedelta(days=2)
    )
    UsageRollup.objects.create(
        account=account,
        endpoint="lookup",
        minute=(timezone.now() - timedelta(minutes=3)).replace(second=0, microsecond=0),
        units=110,
        requests=110,
    )
    out = StringIO()

    call_command("send_usage_alerts", stdout=out)
    call_command("send_usage_alerts", stdout=StringIO())

    assert "1 alert email(s) sent, 0 failed (retried next run), 1 skipped." in out.getvalue()
    assert [message.to for message in mail.outbox] == [[account.email]]
