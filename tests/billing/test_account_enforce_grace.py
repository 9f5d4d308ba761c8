"""billing.services.account_enforce_grace, in the whole failed-payment journey:
decline → past_due with a grace period → downgrade when it ends → pay → restored by itself."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from billing.services.grace import account_enforce_grace
from tests.factories import AccountFactory, ApiKeyFactory

MONTH = 32 * 86400


def _tier_seen_by_api(client, key) -> str:
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {key.plaintext}"})
    assert response.status_code == 200, response.content
    return response.json()["tier"]["slug"]


@pytest.fixture
def renewal_declined(subscribed, webhooks, django_capture_on_commit_callbacks):
    """The Pro subscription renews and the card is declined."""
    webhooks.emulator.set_card_declines(subscribed.stripe_customer.id, True)
    webhooks.emulator.advance_clock(MONTH)
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.deliver()
    subscribed.refresh_from_db()
    return subscribed


@pytest.mark.django_db
def test_a_declined_renewal_starts_a_grace_period_and_emails_the_owner_once(
    renewal_declined, catalog, mailoutbox, owner_client, settings
):
    account = renewal_declined

    assert (account.payment_status, account.tier) == ("past_due", catalog.pro)
    expected_end = timezone.now() + timedelta(days=settings.BILLING_GRACE_DAYS)
    assert abs((account.grace_until - expected_end).total_seconds()) < 60
    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == [account.email]
    assert "payment failed" in email.subject.lower()
    assert "Pro" in email.body and "/billing/" in email.body
    assert email.alternatives and "Update card" in email.alternatives[0][0]
    banner = owner_client.get("/dashboard/").content.decode()
    assert "Your last payment failed." in banner
    assert account.grace_until.strftime("%-d %B %Y") in banner


@pytest.mark.django_db
def test_nothing_moves_while_the_grace_period_runs(renewal_declined, catalog):
    moved = account_enforce_grace(now=renewal_declined.grace_until - timedelta(minutes=1))

    renewal_declined.refresh_from_db()
    assert moved == []
    assert renewal_declined.tier == catalog.pro


@pytest.mark.django_db
def test_after_the_grace_period_the_account_drops_and_paying_restores_it(
    renewal_declined,
    catalog,
    webhooks,
    owner_client,
    client,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    account = renewal_declined
    key = ApiKeyFactory(account=account)
    assert _tier_seen_by_api(client, key) == "pro"

    with django_capture_on_commit_callbacks(execute=True):
        moved = account_enforce_grace(now=account.grace_until + timedelta(seconds=1))

    account.refresh_from_db()
    assert moved == [account.pk]
    assert (account.tier, account.subscribed_tier) == (catalog.free, catalog.pro)
    assert _tier_seen_by_api(client, key) == catalog.free.slug
    assert "moved to" in mailoutbox[-1].subject
    page = owner_client.get("/billing/").content.decode()
    assert "Payment overdue." in page

    # The developer adds a working card in the customer portal ("Manage billing")...
    portal = owner_client.post("/billing/portal/")["Location"]
    requests.post(
        portal + "/action", data={"action": "update_card"}, allow_redirects=False, timeout=5
    )
    # ...and pays the open invoice from the billing page's link.
    open_invoice = next(i for i in account_invoices(owner_client) if i["status"] == "open")
    paid = requests.post(open_invoice["url"] + "/pay", allow_redirects=False, timeout=5)
    assert paid.status_code == 303
    webhooks.deliver()

    account.refresh_from_db()
    assert (account.tier, account.payment_status, account.grace_until) == (
        catalog.pro,
        "active",
        None,
    )
    assert _tier_seen_by_api(client, key) == "pro"


def account_invoices(owner_client) -> list[dict]:
    """The invoices table of the billing page: status and the link to Stripe's hosted page."""
    response = owner_client.get("/billing/")
    invoices = []
    for invoice in response.context["invoices"]:
        invoices.append({"status": invoice.status, "url": invoice.hosted_invoice_url})
        assert invoice.hosted_invoice_url in response.content.decode()
    return invoices


@pytest.mark.django_db
def test_the_grace_period_is_not_restarted_by_later_failures(renewal_declined, webhooks, catalog):
    grace_until = renewal_declined.grace_until

    webhooks.emulator.advance_clock(MONTH)  # the next renewal fails too
    webhooks.deliver()

    renewal_declined.refresh_from_db()
    assert renewal_declined.grace_until == grace_until


@pytest.mark.django_db
def test_a_lapsed_cancellation_drops_the_account_even_if_stripe_is_silent(catalog):
    """cancel_at_period_end passed and customer.subscription.deleted never came."""
    account = AccountFactory(
        tier=catalog.pro,
        subscribed_tier=catalog.pro,
        payment_status="active",
        cancel_at_period_end=True,
        period_start=timezone.now() - timedelta(days=31),
        period_end=timezone.now() - timedelta(minutes=5),
    )
    paying = AccountFactory(
        tier=catalog.pro,
        subscribed_tier=catalog.pro,
        payment_status="active",
        period_end=timezone.now() - timedelta(minutes=5),
    )

    moved = account_enforce_grace()

    assert moved == [account.pk]
    account.refresh_from_db()
    paying.refresh_from_db()
    assert account.tier == catalog.free
    assert paying.tier == catalog.pro
