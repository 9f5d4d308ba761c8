"""Issue 16: "Upgrading mid-period starts a new period and the earlier usage vanishes; no past
periods anywhere."

Why it vanished: ``Account.period_start`` is where the *quota* counts from. A tier switch moves
it to the switch minute (Stripe prices each plan's stretch with its own included units), an
upgrade from the free tier replaces it with the new subscription's period, and the usage page
showed [period_start, period_end) — so the billing period's usage before the switch, and the
whole free period before an upgrade, were nowhere. Now the billing periods are a ledger
(``portal.AccountPeriod``, written when a period begins, not at a switch) and the page shows the
whole billing period, with every past period listed and viewable.

Driven end to end: Checkout on the Stripe emulator, its webhooks, and a real tier switch
(billing.services.switch; Stripe keeps the subscription's cycle on a price change: "Manage your
usage-based billing setup: Update prices mid-cycle",
https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup).
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.services.switch import tier_switch_apply, tier_switch_request
from portal.models import AccountPeriod
from portal.services import account_period_begin
from tests.billing.conftest import checkout_and_pay, rolled_up

pytestmark = pytest.mark.django_db


def found(pattern: str, html: str) -> str:
    """The first group of ``pattern`` in the page; fails the test when the page lacks it."""
    match = re.search(pattern, html, re.S)
    assert match is not None, pattern
    return match.group(1)


@pytest.fixture
def frozen(monkeypatch):
    """The pages read the clock; the emulator's clock runs ahead of it in these tests."""

    def at(moment):
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return at


def _lookup_units(html: str) -> str:
    match = re.search(r"<code>lookup</code></a></td><td class=\"num\">([\d,]+)<", html)
    assert match, "no lookup row"
    return match.group(1)


def test_a_tier_switch_keeps_the_whole_billing_periods_usage_on_the_page(
    owner_client, subscribed, catalog, clock, frozen
):
    period_start = subscribed.period_start
    switch = tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)
    split = switch.effective_at
    rolled_up(subscribed, split - timedelta(minutes=2), 30)  # on Pro
    rolled_up(subscribed, split + timedelta(minutes=1), 5)  # on Team
    switch = tier_switch_apply(switch_id=switch.pk, now=clock.to(split + timedelta(seconds=135)))
    assert switch.status == switch.Status.APPLIED
    subscribed.refresh_from_db()
    assert subscribed.period_start == split  # the quota counts again from the switch

    frozen(split + timedelta(minutes=5))
    html = owner_client.get("/usage/").content.decode()

    # The whole period: both stretches, from the subscription's start.
    assert _lookup_units(html) == "35"
    assert f"Billing period {period_start:%b} {period_start.day}, {period_start:%Y}" in html
    assert "Switched to <strong>Team</strong>" in html
    # The quota is Team's, counted from the switch.
    assert "Units since the switch" in html
    assert f'5 <small class="muted">of {catalog.team.included_units:,}</small>' in html
    # A switch is no new period: one row, the subscription's.
    assert AccountPeriod.objects.filter(account=subscribed).count() == 1


@pytest.mark.parametrize("second", [17, 0], ids=["mid-minute upgrade", "whole-minute upgrade"])
def test_an_upgrade_from_free_lists_the_free_period_and_shows_its_usage(
    owner_client, account, catalog, webhooks, frozen, second
):
    # Signed up an hour ago (account_create records the free period as it begins).
    account.period_start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    account.save(update_fields=["period_start"])
    account_period_begin(account=account)
    rolled_up(account, account.period_start + timedelta(minutes=5), 7)

    upgrade = (int(webhooks.emulator.now) // 60 + 1) * 60 + second
    webhooks.emulator.advance_clock(to=upgrade)
    checkout_and_pay(owner_client, catalog.pro)
    webhooks.deliver()
    account.refresh_from_db()
    assert account.tier == catalog.pro
    # A paid period Stripe starts on a whole minute begins for the account a second later
    # (billing.services.subscriptions: that second's free calls stay free); until then the free
    # period is the one running. The developer looks a few seconds after paying.
    frozen(account.period_start + timedelta(seconds=5))

    current = owner_client.get("/usage/").content.decode()
    # The paid period starts at the upgrade: the free usage is not in it...
    assert "No calls in this stretch." in current
    # ...but in the free period before it, listed and one click away.
    periods = found(r'data-testid="usage-periods">(.*?)</section>', current)
    assert "Free" in periods and "Pro" in periods
    assert "View usage" in periods

    previous = owner_client.get("/usage/", {"period": "previous"}).content.decode()

    assert "Past billing period" in previous
    assert _lookup_units(previous) == "7"
    rows = list(AccountPeriod.objects.filter(account=account).values_list("tier__name", "end"))
    assert rows == [(catalog.free.name, None), (catalog.pro.name, account.period_end)]
