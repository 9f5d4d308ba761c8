"""billing.services.switch: a subscribed developer switches tier at a whole minute; the usage
before it reaches Stripe before Stripe switches prices, the usage after it is dated after the
switch, so each price bills exactly its own stretch (docs/stripe.md, "Update prices mid-cycle")."""

from datetime import timedelta

import pytest
from django.conf import settings

from billing.models import MeterReport, TierSwitch
from billing.services.errors import BillingError
from billing.services.reports import usage_report_run
from billing.services.switch import tier_switch_apply, tier_switch_request, tier_switches_due
from billing.stripe_api import stripe_client
from metering.selectors import period_units
from tests.billing.conftest import rolled_up

pytestmark = pytest.mark.django_db


def _items(account) -> dict[str, str]:
    subscription = stripe_client().v1.subscriptions.retrieve(account.stripe_subscription_id)
    return {item.price.recurring.usage_type: item.price.id for item in subscription["items"].data}


def test_a_switch_takes_effect_at_the_next_whole_minute(subscribed, catalog, clock):
    switch = tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)

    assert switch.effective_at == clock.now.replace(second=0) + timedelta(minutes=1)
    assert (switch.from_tier, switch.to_tier) == (catalog.pro, catalog.team)
    assert switch.status == TierSwitch.Status.SCHEDULED


def test_the_billing_page_says_when_and_at_which_prices(owner_client, subscribed, catalog, clock):
    tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)

    page = owner_client.get("/billing/").content.decode()

    assert "Switching to Team at" in page
    assert "billed at Pro's prices" in page


def test_the_old_stretch_is_reported_before_stripe_switches_and_the_new_one_after(
    subscribed, catalog, clock, webhooks
):
    switch = tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)
    split = switch.effective_at
    rolled_up(subscribed, split - timedelta(minutes=2), 30)
    rolled_up(subscribed, split - timedelta(minutes=1), 12)  # the last old minute
    rolled_up(subscribed, split, 5)  # the first new minute
    rolled_up(subscribed, split + timedelta(minutes=1), 8)

    # Not before every request of the old minutes has settled.
    assert tier_switch_apply(switch_id=switch.pk, now=clock.to(split + timedelta(seconds=60)))
    assert TierSwitch.objects.get(pk=switch.pk).status == TierSwitch.Status.SCHEDULED
    assert _items(subscribed)["metered"] == catalog.pro.stripe_metered_price.id

    switch = tier_switch_apply(switch_id=switch.pk, now=clock.to(split + timedelta(seconds=135)))

    assert switch.status == TierSwitch.Status.APPLIED
    old = MeterReport.objects.get(account=subscribed, window_end=split)
    assert (old.units, old.status) == (42, MeterReport.Status.SENT)
    assert _items(subscribed) == {
        "licensed": catalog.team.stripe_base_price.id,
        "metered": catalog.team.stripe_metered_price.id,
    }
    subscribed.refresh_from_db()
    assert subscribed.tier == catalog.team == subscribed.subscribed_tier
    # Stripe billed the old price's usage so far at the switch (flexible billing mode).
    items = stripe_client().v1.invoice_items.list(
        params={"customer": subscribed.stripe_customer.id}
    )
    # 42 units, all within Pro's included ones: billed at 0.
    assert [(item.quantity, item.amount) for item in items.data] == [(42, 0)]

    hour = split.replace(minute=0) + timedelta(hours=1)
    usage_report_run(now=clock.to(hour + timedelta(minutes=6)))

    new = MeterReport.objects.get(account=subscribed, window_start=split)
    assert (new.units, new.status) == (13, MeterReport.Status.SENT)
    # Its window ends before Stripe switched: the event is dated just after the switch.
    assert switch.applied_at is not None and new.event_time > switch.applied_at
    total = webhooks.emulator.meter_event_total(
        subscribed.stripe_customer.id, settings.STRIPE_METER_EVENT_NAME
    )
    assert total == 55


def test_while_a_switch_is_on_its_way_nothing_past_its_minute_is_reported(
    subscribed, catalog, clock
):
    switch = tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)
    split = switch.effective_at
    rolled_up(subscribed, split - timedelta(minutes=1), 4)
    rolled_up(subscribed, split + timedelta(minutes=1), 9)
    # Stripe refuses the switch, so it stays scheduled past the hourly run.
    clock.to(split + timedelta(minutes=8))
    usage_report_run(now=clock.now)

    assert list(MeterReport.objects.values_list("window_end", "units")) == [(split, 4)]


def test_a_switch_waits_while_stripe_does_not_take_the_oldrolled_up(
    subscribed, catalog, clock, webhooks
):
    switch = tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)
    rolled_up(subscribed, switch.effective_at - timedelta(minutes=1), 7)
    webhooks.emulator.inject_fault("/v1/billing/meter_events", status=500, count=5)

    ready = clock.to(switch.effective_at + timedelta(seconds=135))
    assert tier_switches_due(now=ready) == [switch.pk]
    switch = tier_switch_apply(switch_id=switch.pk, now=ready)

    assert switch.status == TierSwitch.Status.SCHEDULED
    assert "not confirmed" in switch.last_error
    assert _items(subscribed)["metered"] == catalog.pro.stripe_metered_price.id

    switch = tier_switch_apply(switch_id=switch.pk, now=clock.to(ready + timedelta(minutes=1)))

    assert switch.status == TierSwitch.Status.APPLIED
    assert _items(subscribed)["metered"] == catalog.team.stripe_metered_price.id


@pytest.mark.parametrize(
    ("tier_name", "message"),
    [("pro", "already subscribed to Pro"), ("free", "cannot be subscribed to")],
)
def test_what_cannot_be_switched_to(subscribed, catalog, clock, tier_name, message):
    with pytest.raises(BillingError, match=message):
        tier_switch_request(account=subscribed, tier=getattr(catalog, tier_name), now=clock.now)


def test_one_switch_at_a_time(subscribed, catalog, clock):
    tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)

    with pytest.raises(BillingError, match="already on its way"):
        tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)


def test_a_switch_asked_in_the_second_a_whole_minute_period_waits_for_is_made(subscribed, catalog):
    # Stripe started the period on a whole minute: the account's begins a second later, and a
    # developer who switches at once asks inside that second.
    subscribed.period_start = subscribed.period_start.replace(second=1, microsecond=0)
    subscribed.save(update_fields=["period_start"])
    asked = subscribed.period_start - timedelta(milliseconds=500)

    switch = tier_switch_request(account=subscribed, tier=catalog.team, now=asked)

    assert switch.effective_at == subscribed.period_start - timedelta(seconds=1) + timedelta(
        minutes=1
    )


def test_no_switch_in_the_last_minutes_before_renewal(subscribed, catalog):
    asked = subscribed.period_end - timedelta(minutes=10)

    with pytest.raises(BillingError, match=f"renews at {subscribed.period_end:%H:%M} UTC"):
        tier_switch_request(account=subscribed, tier=catalog.team, now=asked)
    assert not TierSwitch.objects.filter(account=subscribed).exists()


def test_an_account_without_a_subscription_subscribes_first(account, catalog):
    with pytest.raises(BillingError, match="subscribe first"):
        tier_switch_request(account=account, tier=catalog.team)


def test_operators_see_switches_in_the_admin(admin_client, subscribed, catalog, clock):
    tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)

    page = admin_client.get("/admin/billing/tierswitch/").content.decode()

    assert "Team" in page and "Scheduled" in page


def test_the_new_tier_counts_its_own_included_units_from_the_switch_until_renewal(
    subscribed, catalog, clock, webhooks
):
    switch = tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)
    rolled_up(subscribed, switch.effective_at - timedelta(minutes=1), 40)
    tier_switch_apply(switch_id=switch.pk, now=clock.to(switch.effective_at + timedelta(minutes=3)))
    webhooks.deliver()  # Stripe's customer.subscription.updated for the switch

    subscribed.refresh_from_db()
    start, end = subscribed.current_period(clock.now)
    # Stripe bills Team's segment from zero, with Team's included units: so does the quota.
    assert start == switch.effective_at
    assert period_units(subscribed.pk, start, end) == 0

    webhooks.emulator.advance_clock(to=int((end + timedelta(hours=2)).timestamp()))
    webhooks.deliver()  # the renewal

    subscribed.refresh_from_db()
    assert subscribed.period_start == end  # a whole billing period again
