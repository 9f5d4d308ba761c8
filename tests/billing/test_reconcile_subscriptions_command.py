"""manage.py reconcile_subscriptions"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.billing.conftest import checkout_and_pay


@pytest.mark.django_db
def test_the_command_repairs_and_says_what_it_changed(owner_client, account, catalog, webhooks):
    checkout_and_pay(owner_client, catalog.pro)
    out = StringIO()

    call_command("reconcile_subscriptions", stdout=out)

    account.refresh_from_db()
    assert account.tier == catalog.pro
    assert f"repaired account {account.pk}" in out.getvalue()
    assert "1 account(s) repaired, 1 invoice(s) stored." in out.getvalue()


@pytest.mark.django_db
def test_the_command_fails_clearly_when_stripe_is_down(subscribed, stripe_api):
    stripe_api.inject_fault("/v1/subscriptions", status=500, count=1)

    with pytest.raises(CommandError, match="nothing changed"):
        call_command("reconcile_subscriptions", stdout=StringIO())
