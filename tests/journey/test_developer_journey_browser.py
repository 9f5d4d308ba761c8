"""The whole journey of a developer, in a real browser against a live portal and the Stripe
emulator: sign up, confirm, create a key, call the API over HTTP, watch usage, run out of the
free quota (alert email and error), upgrade through Checkout, call again and be billed, close the
period on the emulator's clock, and find the invoice with the metered amount on the billing page.
Screenshots of every page land in artifacts/screenshots/ (CI keeps the folder)."""

import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.core import mail
from django.utils import timezone
from djstripe.models import Invoice

from billing.models import MeterReport
from billing.selectors import tier_default
from billing.services.catalog import tiers_sync_to_stripe
from billing.services.reports import usage_report_run
from billing.services.webhook_endpoint import webhook_endpoint_ensure
from billing.stripe_api import stripe_client
from metering.alerts import usage_alerts_run
from metering.services import usage_rollup
from portal.models import Account
from tests.factories import PaidTierFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FREE_UNITS = 20
PRO_INCLUDED = 10
PRO_UNIT_CENTS = Decimal("2")
PASSWORD = "journey-Passw0rd-42"


@pytest.fixture
def portal(live_server, stripe_api, settings):
    """Free (20 units, blocked past them) and Pro (10 included, 2¢ a unit past them) tiers on
    the emulator, whose webhooks reach the live portal over HTTP as Stripe's would."""
    free = tier_default()
    free.included_units = FREE_UNITS
    free.rate_limit_per_minute = 600
    free.save()
    PaidTierFactory(
        slug="pro",
        name="Pro",
        base_price_cents=2900,
        included_units=PRO_INCLUDED,
        overage_unit_price_cents=PRO_UNIT_CENTS,
        rate_limit_per_minute=600,
        sort_order=10,
    )
    tiers_sync_to_stripe()
    settings.SITE_URL = live_server.url
    webhook_endpoint_ensure(base_url=live_server.url)
    stripe_api.set_webhook_mode("http")
    return live_server.url


def call(base: str, key: str, times: int) -> list[requests.Response]:
    return [
        requests.get(
            f"{base}/v1/lookup",
            params={"q": 7},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        for _ in range(times)
    ]


def test_sign_up_use_run_out_upgrade_and_pay_for_what_was_used(
    portal, stripe_api, page, screenshot
):
    # Pricing, as a visitor sees it.
    page.goto(f"{portal}/pricing/")
    screenshot(page, "pricing")

    # Sign up and confirm the email.
    page.goto(f"{portal}/accounts/signup/")
    page.fill("input[name=email]", "grace@example.com")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign Up", re.I)).click()
    page.wait_for_url(re.compile(r"/accounts/confirm-email/"))
    found = re.search(r"https?://\S+/accounts/confirm-email/\S+/", str(mail.outbox[-1].body))
    assert found is not None
    link = found.group(0)
    page.goto(re.sub(r"^https?://[^/]+", portal, link))
    page.get_by_role("button", name=re.compile("Confirm", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))
    account = Account.objects.get(owner__email="grace@example.com")

    # Create a key; its secret is shown once.
    page.goto(f"{portal}/keys/")
    page.get_by_role("link", name=re.compile("Create (a|your first) key")).first.click()
    page.fill("input[name=name]", "journey")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("new-key").inner_text().strip()
    assert re.fullmatch(r"mdk_test_[a-z0-9]{8}_[A-Za-z0-9]{32}", secret)
    screenshot(page, "keys")

    # Call the API over HTTP: every answer carries the rate-limit headers.
    first = call(portal, secret, 16)
    assert [r.status_code for r in first] == [200] * 16
    assert first[-1].headers["RateLimit-Policy"].startswith('"minute";q=600;w=')
    assert "X-RateLimit-Remaining" in first[-1].headers

    # The usage page draws it.
    page.goto(f"{portal}/usage/")
    assert page.locator("svg").count() >= 1
    assert "16" in page.inner_text("main")
    screenshot(page, "usage")

    # Run out of the free units: the 21st unit is refused with a way out.
    assert [r.status_code for r in call(portal, secret, 4)] == [200] * 4
    [refused] = call(portal, secret, 1)
    assert refused.status_code == 429
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.json()["detail"].startswith("This billing period's quota is used up")
    assert refused.json()["upgrade_url"].endswith("/pricing/")
    assert int(refused.headers["Retry-After"]) > 0

    # The jobs: rollup, then alerts, which email the developer and show on the dashboard.
    later = timezone.now() + timedelta(minutes=5)
    usage_rollup(now=later)
    mail.outbox.clear()
    usage_alerts_run(now=later)
    [alert] = [m for m in mail.outbox if m.to == ["grace@example.com"]]
    assert "reached your included API units" in alert.subject
    assert "100" in alert.body
    assert "/pricing/" in alert.body
    page.goto(f"{portal}/dashboard/")
    assert page.get_by_test_id("usage-alert-banner").is_visible()
    screenshot(page, "dashboard")

    # Upgrade through Checkout; the tier changes when Stripe's webhook arrives. Not in a
    # minute's first seconds: the rollup above drained this minute early (``later``), and a
    # subscription Stripe dates on the whole minute (it keeps whole seconds) would count the
    # paid calls in that same, already rolled-up minute.
    while timezone.now().second < 3:
        time.sleep(0.2)
    page.goto(f"{portal}/pricing/")
    page.get_by_test_id("upgrade-pro").click()
    page.wait_for_url(re.compile(re.escape(stripe_api.url) + r"/c/pay/"))
    screenshot(page, "checkout")
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(re.compile(r"/billing/"))
    page.wait_for_function(
        # A function, not an expression: Playwright evals an expression in the page, which
        # the Content-Security-Policy refuses (no 'unsafe-eval').
        "() => document.querySelector('[data-testid=billing-tier]').textContent.trim() === 'Pro'",
        timeout=20_000,
    )
    account.refresh_from_db()
    assert account.tier.slug == "pro"

    # Calls work again, now billed: 25 units, 10 included, 15 at 2¢.
    assert [r.status_code for r in call(portal, secret, 25)] == [200] * 25

    # Two hours later the jobs have rolled up and reported the calls' hour to Stripe. (Calls
    # right after the upgrade count from the next minute, so their hour can be the next one:
    # it closes, with the report's grace, at most 66 minutes from now.)
    stripe_api.advance_clock(2 * 3600)
    two_hours_later = timezone.now() + timedelta(hours=2)
    usage_rollup(now=two_hours_later)
    usage_report_run(now=two_hours_later)
    reported = sum(r.units for r in MeterReport.objects.filter(account=account, status="sent"))
    assert reported == 25
    assert account.stripe_customer is not None
    customer_id = account.stripe_customer.id
    assert stripe_api.meter_event_total(customer_id, tier_default().stripe_meter_id) == 25

    # Close the period on the emulator's clock: Stripe invoices the metered usage.
    stripe_api.advance_clock(31 * 24 * 3600)
    assert stripe_api.wait_for_webhooks(timeout=20)
    metered_cents = int((reported - PRO_INCLUDED) * PRO_UNIT_CENTS)
    closing = Invoice.objects.filter(customer__id=customer_id).order_by("-created").first()
    assert closing is not None
    assert closing.total == 2900 + metered_cents
    # Stripe's own invoice: one line for the metered price, all 25 units, 15 of them paid for.
    lines = stripe_client().v1.invoices.line_items.list(closing.id).data
    [metered] = [line for line in lines if line.quantity == reported]
    assert metered.amount == metered_cents == 30

    page.goto(f"{portal}/billing/")
    invoices = page.get_by_test_id("invoices").inner_text()
    assert f"{(2900 + metered_cents) / 100:.2f}" in invoices
    screenshot(page, "billing")

    # The narrow screen: the same pages stay usable on a phone.
    page.set_viewport_size({"width": 390, "height": 844})
    for name in ("dashboard", "keys", "usage", "billing", "pricing"):
        page.goto(f"{portal}/{name}/")
        screenshot(page, f"{name}-narrow")
