"""GET /billing/ — tier, status, period, notices and the invoices dj-stripe stored."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal.models import Role
from tests.billing.conftest import checkout_and_pay
from tests.factories import MembershipFactory


@pytest.mark.django_db
def test_a_free_developer_sees_the_plan_and_an_upgrade_button(owner_client, account):
    response = owner_client.get("/billing/")
    page = response.content.decode()

    assert response.status_code == 200
    assert account.tier.name in page
    assert "No subscription" in page
    assert 'data-testid="manage-billing"' not in page
    assert "No invoices yet" in page
    assert "Upgrade" in page


@pytest.mark.django_db
def test_a_subscriber_sees_status_period_and_invoices_with_links(owner_client, subscribed):
    page = owner_client.get("/billing/").content.decode()

    assert 'data-testid="manage-billing"' in page
    assert ">Active<" in page
    assert f"Renews {subscribed.period_end:%-d %b %Y}" in page
    invoices = owner_client.get("/billing/").context["invoices"]
    assert len(invoices) == 1
    invoice = invoices[0]
    assert invoice.status == "paid" and invoice.total == 2900
    assert invoice.number in page
    assert "$29.00" in page
    assert invoice.hosted_invoice_url in page and invoice.invoice_pdf in page


@pytest.mark.django_db
def test_in_the_second_before_a_whole_minute_period_begins_the_page_shows_that_period(
    owner_client, subscribed, monkeypatch
):
    # Stripe started the period on a whole minute: the account's begins a second later
    # (billing.services.subscriptions), and a developer back from Checkout looks inside it.
    subscribed.period_start = subscribed.period_start.replace(second=1, microsecond=0)
    subscribed.save(update_fields=["period_start"])
    monkeypatch.setattr(
        timezone, "now", lambda: subscribed.period_start - timedelta(milliseconds=500)
    )

    page = owner_client.get("/billing/").content.decode()

    assert f"Renews {subscribed.period_end:%-d %b %Y}" in page


@pytest.mark.django_db
def test_nobody_sees_another_developers_invoices(subscribed, outsider):
    outsider_client = Client()
    outsider_client.force_login(outsider)

    page = outsider_client.get("/billing/")

    assert page.context["invoices"] == []
    assert "No invoices yet" in page.content.decode()


@pytest.mark.django_db
def test_after_a_minute_without_webhook_the_page_stops_refreshing(
    owner_client, account, catalog, webhooks
):
    checkout_and_pay(owner_client, catalog.pro)
    session = owner_client.session
    session["billing_checkout"]["at"] -= 61
    session.save()

    page = owner_client.get("/billing/?checkout=success").content.decode()

    assert 'http-equiv="refresh"' not in page
    assert "has not confirmed your subscription to Pro yet" in page


@pytest.mark.django_db
def test_the_billing_page_needs_login(client):
    response = client.get("/billing/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_a_billing_member_sees_the_organisations_invoices(subscribed, client):
    member = MembershipFactory(account=subscribed, role=Role.BILLING).user
    client.force_login(member)

    page = client.get("/billing/")

    assert len(page.context["invoices"]) == 1
    assert 'data-testid="manage-billing"' in page.content.decode()


@pytest.mark.django_db
def test_a_developer_is_told_who_opens_the_billing_page(account, client):
    client.force_login(MembershipFactory(account=account, role=Role.DEVELOPER).user)

    response = client.get("/billing/")

    assert response.status_code == 403
    assert "needs <strong>Owner</strong> or <strong>Billing</strong>" in response.content.decode()
