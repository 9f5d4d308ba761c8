"""The account admin's money audit: one period's units from the limiter to the invoice line,
each figure green when it agrees with the one above, red with the reason when it does not."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import MeterReport
from billing.services.reports import usage_report_run
from tests.billing import conftest as billing_fixtures
from tests.factories import AccountFactory, StaffUserFactory, UserFactory
from tests.usage_ledger import window_report
from tests.usage_reporting import hour_floor, stripe_subscription_started, stripe_total

# The billing tests' emulator fixtures: tiers pushed to Stripe, a developer subscribed through
# Checkout, webhooks held back until delivered.
stripe_api = billing_fixtures.stripe_api
catalog = billing_fixtures.catalog
webhooks = billing_fixtures.webhooks


@pytest.fixture(params=[17, 0], ids=["mid-minute start", "whole-minute start"])
def subscribed(request, owner_client, account, catalog, webhooks):
    """The owner subscribed to Pro through Checkout, at a chosen second of the emulator's
    minute. A paid period Stripe starts on a whole minute makes the account's period start one
    second later (billing.services.subscriptions: that second's free calls stay free), so the
    audit's period and the invoice line's no longer begin at the same second."""
    emulator = webhooks.emulator
    emulator.advance_clock(to=(int(emulator.now) // 60 + 1) * 60 + request.param)
    billing_fixtures.checkout_and_pay(owner_client, catalog.pro)
    webhooks.deliver()
    account.refresh_from_db()
    assert account.tier == catalog.pro
    return account


pytestmark = pytest.mark.django_db


def audit_url(account) -> str:
    return reverse("admin:portal_account_money_audit", args=[account.pk])


def states(response) -> dict[str, str]:
    return {row.label: row.state for row in response.context["audit"].rows}


def test_a_closed_period_whose_figures_all_agree_is_green(
    subscribed, webhooks, add_usage, admin_user, monkeypatch
):
    account, emulator = subscribed, webhooks.emulator
    start, end = account.period_start, account.period_end
    add_usage(account, start + timedelta(minutes=3), 12)
    # The hourly reporter, three hours into the period.
    emulator.advance_clock(to=int((start + timedelta(hours=3)).timestamp()))
    usage_report_run(now=start + timedelta(hours=3, minutes=6))
    assert stripe_total(emulator, account) == 12
    # The period ends; Stripe drafts its invoice and finalizes it an hour later.
    emulator.advance_clock(to=int((end + timedelta(hours=2)).timestamp()))
    monkeypatch.setattr(timezone, "now", lambda: end + timedelta(hours=2))
    operator = Client()
    operator.force_login(admin_user)

    response = operator.get(audit_url(account), {"period": start.isoformat()})

    assert response.status_code == 200
    audit = response.context["audit"]
    assert (audit.period_start, audit.is_open) == (start, False)
    assert [(row.units, row.state) for row in audit.rows] == [(12, "agrees")] * 5
    page = response.content.decode()
    assert page.count('<tr class="audit-agrees">') == 5
    assert "Every figure agrees." in page
    assert "Invoiced (metered line quantity)" in page


def test_a_report_stripe_lost_is_red_with_the_reason(
    admin_client, subscribed_account, add_usage, reporting_stripe
):
    account = subscribed_account()
    start = hour_floor(timezone.now()) - timedelta(hours=3)
    add_usage(account, start + timedelta(minutes=5), 13)
    window_report(account, start, 13, status=MeterReport.Status.SENT, sent_at=timezone.now())
    # The ledger says sent, and the report claimed the rollup; Stripe never got the event.
    account.usage_rollups.update(meter_report=MeterReport.objects.get())

    response = admin_client.get(audit_url(account))

    assert states(response) == {
        "Units admitted (limiter)": "agrees",
        "Units rolled up (usage rollups)": "agrees",
        "Units reported (meter reports)": "agrees",
        "On Stripe (meter event summary)": "differs",
        "Invoiced (metered line quantity)": "expected",
    }
    page = response.content.decode()
    assert '<tr class="audit-differs">' in page
    assert "Stripe has 13 units fewer than our sent reports" in page
    assert "Not invoiced yet: the period is running." in page


def test_free_usage_before_the_subscription_is_rolled_up_never_reported_and_expected(
    admin_client, subscribed_account, add_usage, reporting_stripe
):
    account = subscribed_account(days_into_period=2)
    stripe_subscription_started(account, account.period_start)
    # Used on the free tier, in the period before the subscription began.
    add_usage(account, account.period_start - timedelta(hours=3), 40)
    previous = account.current_period(account.period_start - timedelta(seconds=1))[0]

    response = admin_client.get(audit_url(account), {"period": previous.isoformat()})

    rows = {row.label: row for row in response.context["audit"].rows}
    assert [(row.units, row.state) for row in rows.values()] == [
        (40, "agrees"),
        (40, "agrees"),
        (0, "expected"),
        (0, "agrees"),
        (None, "expected"),
    ]
    assert rows["Units reported (meter reports)"].note == (
        "40 units before the subscription started (free-tier usage, never billed)."
    )
    assert rows["Invoiced (metered line quantity)"].note == (
        "No subscription in this period: not invoiced."
    )
    assert '<tr class="audit-expected">' in response.content.decode()


def test_the_running_hour_and_a_pending_report_are_expected_differences(
    admin_client, subscribed_account, add_usage, reporting_stripe
):
    account = subscribed_account()
    stripe_subscription_started(account, account.period_start)
    start = hour_floor(timezone.now()) - timedelta(hours=2)
    add_usage(account, start + timedelta(minutes=10), 5)
    window_report(account, start, 5, status=MeterReport.Status.PENDING)
    account.usage_rollups.update(meter_report=MeterReport.objects.get())
    add_usage(account, hour_floor(timezone.now()), 2)  # the running hour, not reported yet

    response = admin_client.get(audit_url(account))

    rows = {row.label: row for row in response.context["audit"].rows}
    reported = rows["Units reported (meter reports)"]
    assert (reported.units, reported.state, reported.detail) == (5, "expected", "pending 5")
    assert reported.note.startswith("2 units not reported yet")
    on_stripe = rows["On Stripe (meter event summary)"]
    assert (on_stripe.units, on_stripe.state) == (0, "expected")
    assert (
        on_stripe.note == "5 units pending or failed: the reporter sends them (same identifiers)."
    )


def test_the_period_picker_offers_the_current_and_the_previous_period(admin_client):
    account = AccountFactory(period_start=timezone.now() - timedelta(days=40))
    current, previous = (
        account.current_period(),
        account.current_period(account.current_period()[0] - timedelta(seconds=1)),
    )

    shown = admin_client.get(audit_url(account))
    chosen = admin_client.get(audit_url(account), {"period": previous[0].isoformat()})

    assert shown.context["audit"].period_start == current[0]
    assert [p["start"] for p in shown.context["periods"]] == [current[0], previous[0]]
    assert chosen.context["audit"].period_start == previous[0]
    # A free account: nothing is reported or billed, and the page says so.
    rows = {row.label: row for row in chosen.context["audit"].rows}
    assert rows["Invoiced (metered line quantity)"].note == "No Stripe customer: nothing is billed."


def test_the_account_page_links_to_the_money_audit(admin_client):
    account = AccountFactory()

    page = admin_client.get(reverse("admin:portal_account_change", args=[account.pk]))

    assert f'href="{audit_url(account)}">Money audit</a>' in page.content.decode()


def test_a_developer_is_sent_to_the_admin_login(client):
    account = AccountFactory()
    client.force_login(UserFactory())

    response = client.get(audit_url(account))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_account_view_permission_are_refused(client):
    account = AccountFactory()
    client.force_login(StaffUserFactory())

    assert client.get(audit_url(account)).status_code == 403


def test_an_unknown_account_is_a_404(admin_client):
    response = admin_client.get(reverse("admin:portal_account_money_audit", args=[999999]))

    assert response.status_code == 404
