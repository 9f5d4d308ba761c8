"""``manage.py send_budget_alerts``: the beat job, run by hand; twice sends once."""

from io import StringIO

import pytest
from django.core.management import call_command

from tests.billing.money_fixtures import capped_tier, subscribe, use
from tests.factories import BudgetFactory

pytestmark = pytest.mark.django_db


def _run() -> str:
    out = StringIO()
    call_command("send_budget_alerts", stdout=out)
    return out.getvalue()


def test_the_command_sends_each_reached_amount_once(account, mailoutbox):
    subscribe(account, capped_tier())
    BudgetFactory(account=account, amount_cents=1000, alert_percents=[50])
    use(account, 1000 + 1100)  # $5.50 of usage charges

    first, second = _run(), _run()

    assert f"account {account.pk}: 500 cents sent" in first
    assert first.endswith("1 budget alert(s) sent.\n")
    assert second == "0 budget alert(s) sent.\n"
    assert len(mailoutbox) == 1
