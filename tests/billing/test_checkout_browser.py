"""Upgrade through Stripe Checkout in a real browser: the pricing page's button, the emulator's
hosted Checkout page, its signed webhooks posted over HTTP to the live portal, and the billing
page that waits for them."""

import re

import pytest

from billing.services.webhook_endpoint import webhook_endpoint_ensure
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def live_stripe(stripe_api, live_server, settings, catalog, owner):
    """The emulator posts its webhooks to the live server, as Stripe would. Switched on after
    the test's own rows are written: the in-memory test database lets one writer at a time."""
    settings.SITE_URL = live_server.url
    webhook_endpoint_ensure(base_url=live_server.url)
    stripe_api.set_webhook_mode("http")
    return stripe_api


def test_a_developer_upgrades_to_pro_through_checkout(
    live_server, live_stripe, catalog, owner, page, screenshot
):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))

    page.goto(f"{live_server.url}/pricing/")
    assert page.get_by_test_id("current-tier").is_visible()
    screenshot(page, "pricing-signed-in")
    page.get_by_test_id("upgrade-pro").click()

    # Stripe's hosted Checkout page (the emulator's, offline).
    page.wait_for_url(re.compile(re.escape(live_stripe.url) + r"/c/pay/cs_test_"))
    assert "Pro" in page.content()
    screenshot(page, "checkout")
    page.get_by_role("button", name="Pay").click()

    # Back on the billing page, which refreshes itself until the webhook has moved the account.
    page.wait_for_url(re.compile(r"/billing/\?checkout=success"))
    page.wait_for_function(
        # A function, not an expression: Playwright evals an expression in the page, which
        # the Content-Security-Policy refuses (no 'unsafe-eval').
        "() => document.querySelector('[data-testid=billing-tier]').textContent.trim() === 'Pro'",
        timeout=15_000,
    )
    assert "you are now on Pro" in page.content()
    assert page.get_by_test_id("payment-status").inner_text() == "Active"
    assert page.get_by_test_id("invoices").is_visible()
    screenshot(page, "billing-after-upgrade")

    assert live_stripe.wait_for_webhooks(timeout=10)
    owner.owned_accounts.get().refresh_from_db()
    assert owner.owned_accounts.get().tier == catalog.pro
    assert all(attempt["status"] == 200 for attempt in live_stripe.webhook_attempts())
