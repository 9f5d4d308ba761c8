"""Billing tests run against the Stripe emulator, through the real stripe SDK and dj-stripe:
nothing of ours that talks to Stripe is mocked."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
import stripe
from django.test import Client
from django.urls import reverse

from billing.models import Tier
from billing.selectors import tier_default
from billing.services.catalog import tiers_sync_to_stripe
from billing.services.webhook_endpoint import webhook_endpoint_ensure
from metering.models import UsageRollup
from tests.factories import PaidTierFactory


@pytest.fixture
def stripe_api(stripe_emulator, settings, monkeypatch):
    """Point the portal (our StripeClient and dj-stripe's module-level stripe) at the emulator;
    Stripe sends browsers back to Django's test client."""
    settings.STRIPE_API_BASE = stripe_emulator.url
    settings.SITE_URL = "http://testserver"
    monkeypatch.setattr(stripe, "api_base", stripe_emulator.url)
    return stripe_emulator


@dataclass
class Catalog:
    free: Tier
    pro: Tier
    team: Tier


@pytest.fixture
def catalog(stripe_api, db) -> Catalog:
    """The default free tier and two paid tiers, pushed to the emulator."""
    free = tier_default()
    pro = PaidTierFactory(
        slug="pro",
        name="Pro",
        base_price_cents=2900,
        included_units=50_000,
        rate_limit_per_minute=600,
        overage_unit_price_cents=Decimal("0.1"),
        sort_order=10,
    )
    team = PaidTierFactory(
        slug="team",
        name="Team",
        base_price_cents=9900,
        included_units=500_000,
        rate_limit_per_minute=3000,
        overage_unit_price_cents=Decimal("0.05"),
        sort_order=20,
    )
    tiers_sync_to_stripe()
    for tier in (free, pro, team):
        tier.refresh_from_db()
    return Catalog(free=free, pro=pro, team=team)


class WebhookRelay:
    """Hands the emulator's queued events to the portal's webhook endpoint through Django's
    test client, signed as Stripe signs them (the emulator's manual delivery mode)."""

    def __init__(self, emulator, endpoint):
        self.emulator = emulator
        self.endpoint = endpoint
        self.client = Client()

    def send(self, url: str, body: bytes, headers: dict):
        return self.client.post(
            urlsplit(url).path,
            data=body,
            content_type="application/json",
            headers={"Stripe-Signature": headers["Stripe-Signature"]},
        )

    def deliver(self) -> list[dict]:
        """Deliver everything queued; every delivery must be accepted."""
        results = self.emulator.deliver_pending(self.send)
        refused = [r for r in results if r["status"] != 200]
        assert not refused, refused
        return results


@pytest.fixture
def webhooks(stripe_api, db) -> WebhookRelay:
    endpoint, _ = webhook_endpoint_ensure(base_url="http://testserver")
    return WebhookRelay(stripe_api, endpoint)


def checkout_and_pay(client: Client, tier: Tier) -> str:
    """Press Upgrade on the pricing page, then Pay on the emulator's hosted Checkout page, as a
    browser would (a plain form POST). Returns where Stripe sends the browser back to."""
    response = client.post(reverse("billing:checkout"), {"tier": tier.slug})
    assert response.status_code == 303, response
    paid = requests.post(response["Location"] + "/pay", allow_redirects=False, timeout=5)
    assert paid.status_code == 303, paid.text
    return paid.headers["Location"]


@pytest.fixture
def subscribed(owner_client, account, catalog, webhooks):
    """The owner subscribed to Pro through Checkout, every webhook delivered."""
    checkout_and_pay(owner_client, catalog.pro)
    webhooks.deliver()
    account.refresh_from_db()
    assert account.tier == catalog.pro
    return account


@pytest.fixture
def clock(subscribed, webhooks):
    """Both clocks an hour and a bit on, at 2½ minutes before an hour boundary: the switch's
    minute is then two minutes before the hour and Stripe applies it just after the hour."""
    emulator = webhooks.emulator
    start = datetime.fromtimestamp(emulator.now, UTC).replace(minute=0, second=0, microsecond=0)
    moment = start + timedelta(hours=2) - timedelta(minutes=2, seconds=30)

    class Clock:
        now = moment

        def to(self, when: datetime) -> datetime:
            emulator.advance_clock(to=int(when.timestamp()))
            self.now = when
            return when

    clock = Clock()
    clock.to(moment)
    return clock


def rolled_up(account, minute: datetime, units: int) -> None:
    """Usage the rollup job has written for ``minute``."""
    UsageRollup.objects.create(
        account=account, endpoint="lookup", minute=minute, units=units, requests=units
    )
