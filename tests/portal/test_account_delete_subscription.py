"""Deleting a subscribed organisation (by its owner, or with the login of its only member)
cancels its subscription at once through billing's cancel-now, in the Stripe emulator: the
usage before billing ends is reported and billed on the final invoice, nothing after it is
(docs/stripe.md: "Cancel now: `invoice_now` bills the un-invoiced usage in a final invoice,
otherwise it is discarded", Cancel a subscription,
https://docs.stripe.com/api/subscriptions/cancel). The invoices are in the export offered
first, and a plan change already on its way makes the deletion wait."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.conf import settings

from billing.models import MeterReport, TierSwitch
from billing.services.reports import usage_report_run
from billing.services.switch import tier_switch_apply, tier_switch_request
from billing.stripe_api import stripe_client
from portal.account_deletion import login_delete, organisation_delete
from portal.models import AuditEntry
from tests.billing import conftest as billing_fixtures
from tests.billing.conftest import rolled_up
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

# The billing tests' emulator fixtures: tiers pushed to Stripe, a subscription paid through
# Checkout, the webhooks relayed, both clocks moved together.
stripe_api = billing_fixtures.stripe_api
catalog = billing_fixtures.catalog
webhooks = billing_fixtures.webhooks
subscribed = billing_fixtures.subscribed
clock = billing_fixtures.clock


@pytest.mark.parametrize("deletion", ["organisation", "login"])
def test_the_subscription_is_cancelled_and_the_usage_so_far_billed(
    subscribed, catalog, clock, webhooks, deletion
):
    # The services the page calls, at the billing tests' clock: two hours into the
    # subscription, so the minute before billing ends is a paid one.
    owner = subscribed.owner
    if deletion == "organisation":
        organisation_delete(account=subscribed, actor=owner, now=clock.now)
    else:
        login_delete(user=owner, now=clock.now)

    switch = TierSwitch.objects.get(account=subscribed)
    assert (switch.to_tier, switch.status) == (None, TierSwitch.Status.SCHEDULED)
    end = switch.effective_at
    rolled_up(subscribed, end - timedelta(minutes=1), 21)
    rolled_up(subscribed, end + timedelta(minutes=1), 9)  # after billing ended: never billed

    switch = tier_switch_apply(switch_id=switch.pk, now=clock.to(end + timedelta(seconds=135)))

    assert switch.status == TierSwitch.Status.APPLIED
    subscription = stripe_client().v1.subscriptions.retrieve(subscribed.stripe_subscription_id)
    assert subscription.status == "canceled"
    usage_report_run(now=clock.to(end + timedelta(minutes=10)))
    assert list(MeterReport.objects.values_list("window_end", "units")) == [(end, 21)]
    total = webhooks.emulator.meter_event_total(
        subscribed.stripe_customer.id, settings.STRIPE_METER_EVENT_NAME
    )
    assert total == 21
    entry = AuditEntry.objects.get(action="account.delete")
    assert entry.after["subscription_cancelled"] is True
    cancel = AuditEntry.objects.get(action="account.subscription_cancel")
    # With the login, the cancellation's own entry names the organisation by the anonymised
    # login, not the email; deleting the organisation alone keeps the owner's login and email.
    assert cancel.target.endswith("@deleted.invalid") == (deletion == "login")


def test_the_export_offered_first_lists_the_invoices(owner_client, subscribed, webhooks):
    webhooks.deliver()

    text = b"".join(owner_client.get("/account/export/invoices.csv").streaming_content).decode()
    document = json.loads(
        b"".join(owner_client.get("/account/export/account.json").streaming_content)
    )

    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows, "Checkout's first invoice is listed"
    assert rows[0]["id"].startswith("in_")
    assert rows[0]["status"] == "paid"
    assert [row["id"] for row in document["invoices"]] == [row["id"] for row in rows]


@pytest.mark.parametrize(
    ("url", "field"),
    [("/account/delete/", "password"), ("/account/organisation/delete/", "organisation-password")],
)
def test_a_plan_change_on_its_way_makes_the_deletion_wait(
    owner_client, owner, subscribed, catalog, clock, url, field
):
    tier_switch_request(account=subscribed, tier=catalog.team, now=clock.now)

    response = owner_client.post(url, {field: PASSWORD})

    assert response.status_code == 409
    assert "A change of plan is on its way to Stripe" in response.content.decode()
    owner.refresh_from_db()
    assert owner.is_active and "@deleted.invalid" not in owner.email
    assert not AuditEntry.objects.filter(action="account.delete").exists()
    subscribed.refresh_from_db()
    assert subscribed.is_active and subscribed.memberships.filter(user=owner).exists()
