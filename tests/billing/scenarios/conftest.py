"""Fixtures of the money scenarios: small tiers pushed to the emulator, the scenario's clock, and a
developer with a key, a browser session and the beat's jobs (tests/billing/conftest.py provides
the emulator, ``stripe_api``, and the webhook relay, ``webhooks``)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from django.test import Client

from billing.models import Tier
from billing.selectors import tier_default
from billing.services.catalog import tiers_sync_to_stripe
from billing.stripe_api import stripe_client
from devtools.stripe_emulator import Emulator
from portal.models import Account
from tests.billing.conftest import WebhookRelay, checkout_and_pay
from tests.billing.scenarios.scenario import (
    FINALIZATION_GRACE,
    HOURLY_RUN,
    PRO_TIER,
    Beat,
    Developer,
    InvoiceFigures,
    ScenarioClock,
    customer_invoices,
    hour_floor,
)
from tests.factories import AccountFactory, ApiKeyFactory, PaidTierFactory


@dataclass
class MoneyTiers:
    free: Tier
    pro: Tier
    team: Tier


@pytest.fixture
def money_tiers(stripe_api, db) -> MoneyTiers:
    """Pro (``PRO_TIER``) and a Team tier of the same kind, pushed to the emulator."""
    pro = PaidTierFactory(slug="pro", name="Pro", sort_order=10, **PRO_TIER)
    team = PaidTierFactory(
        slug="team",
        name="Team",
        base_price_cents=9900,
        included_units=300,
        rate_limit_per_minute=120,
        overage_unit_price_cents=Decimal("0.15"),
        sort_order=20,
    )
    tiers_sync_to_stripe()
    free = tier_default()
    for tier in (free, pro, team):
        tier.refresh_from_db()
    return MoneyTiers(free=free, pro=pro, team=team)


@pytest.fixture
def scenario_clock(stripe_api, monkeypatch, settings):
    """The scenario's clock, starting at the emulator's now; moving it moves the emulator."""
    emulator = stripe_api

    def move_emulator(moment: datetime) -> None:
        # The emulator also follows real time, so it may be a few seconds ahead already.
        emulator.advance_clock(to=max(int(moment.timestamp()), emulator.now))

    clock = ScenarioClock(datetime.fromtimestamp(emulator.now, UTC), move_emulator)
    clock.install(monkeypatch)
    # A scenario spans months; the developer's browser session must outlive them.
    settings.SESSION_COOKIE_AGE = 400 * 86400
    # The reporter's back-off waits for real; short, as in the reporter's own tests.
    settings.USAGE_REPORT_BACKOFF_MS = 10
    return clock


@dataclass
class Scenario:
    """One developer's month (or two) on the portal, and what it takes to run it."""

    clock: ScenarioClock
    tiers: MoneyTiers
    account: Account
    browser: Client
    api: Developer
    beat: Beat
    webhooks: WebhookRelay

    @property
    def emulator(self) -> Emulator:
        return self.webhooks.emulator

    def refresh(self) -> Account:
        self.account.refresh_from_db()
        return self.account

    def upgrade(self, tier: Tier) -> datetime:
        """Checkout for ``tier``, paid, its webhooks delivered. Returns when the subscription
        (and its first period) started; the clock is there or later."""
        checkout_and_pay(self.browser, tier)
        self.webhooks.deliver()
        account = self.refresh()
        assert account.tier == tier and account.payment_status == "active"
        self.clock.catch_up(account.period_start)
        self.api.segment = tier.slug
        return account.period_start

    def customer_portal(self, action: str, **fields: str) -> None:
        """*Manage billing*, then one action on Stripe's customer portal page (a form POST,
        as the browser sends it); its webhooks delivered."""
        response = self.browser.post("/billing/portal/")
        assert response.status_code == 303, response
        done = requests.post(
            response["Location"] + "/action",
            data={"action": action, **fields},
            allow_redirects=False,
            timeout=5,
        )
        assert done.status_code == 303, done.text
        self.webhooks.deliver()

    def switch_to(self, tier: Tier) -> datetime:
        """Press ``tier``'s button on the pricing page, as a subscribed developer switches
        plans: the switch takes effect at the next whole minute, which the billing page
        announces. Returns that minute."""
        response = self.browser.post("/billing/checkout/", {"tier": tier.slug}, follow=True)
        announced = response.context["switch"]
        assert announced is not None and announced.to_tier == tier, response.content
        assert f"Switching to {tier.name} at {announced.effective_at:%H:%M} UTC" in (
            response.content.decode()
        )
        return announced.effective_at

    def switch_applied(self, effective_at: datetime, tier: Tier) -> None:
        """The every-minute job moves the subscription once the minute before the switch is
        rolled up (its grace) and reported; its webhooks are delivered."""
        self.clock.to(effective_at + timedelta(minutes=3))
        self.beat.apply_tier_switches()
        assert self.refresh().tier == tier

    def report_the_hour_of(self, moment: datetime) -> None:
        """The hourly report run that follows the hour of ``moment``."""
        self.clock.to(hour_floor(moment) + timedelta(hours=1) + HOURLY_RUN)
        self.beat.hourly_report()

    def period_end(self) -> datetime:
        end = self.refresh().period_end
        assert end is not None
        return end

    def close_period(self, end: datetime) -> None:
        """The period ending at ``end`` closes as it does in production: Stripe drafts the
        invoice at the end, the period-close job reports the final window minutes later,
        Stripe finalizes and charges the invoice an hour after the end."""
        # The period-close job runs every five minutes, once the report's grace has passed.
        self.clock.to(end + timedelta(minutes=6))
        self.webhooks.deliver()
        self.beat.period_close_report()
        self.clock.to(end + FINALIZATION_GRACE + timedelta(minutes=1))
        self.webhooks.deliver()

    def invoices(self) -> list[InvoiceFigures]:
        customer = self.refresh().stripe_customer
        assert customer is not None
        return customer_invoices(stripe_client(), customer.id)

    def meter_total(self, start: datetime | None = None, end: datetime | None = None) -> int:
        """Units Stripe accepted on the meter for this customer, [start, end)."""
        customer = self.refresh().stripe_customer
        assert customer is not None
        return self.emulator.meter_event_total(
            customer.id,
            self.tiers.pro.stripe_meter_id,
            int(start.timestamp()) if start else None,
            int(end.timestamp()) if end else None,
        )


@pytest.fixture
def scenario(scenario_clock, money_tiers, webhooks, django_capture_on_commit_callbacks) -> Scenario:
    """A verified developer on the free tier, signed in, with an API key."""
    account = AccountFactory()
    browser = Client()
    browser.force_login(account.owner)
    key = ApiKeyFactory(account=account)
    return Scenario(
        clock=scenario_clock,
        tiers=money_tiers,
        account=account,
        browser=browser,
        api=Developer(client=Client(), key=key.plaintext, segment="free"),
        beat=Beat(django_capture_on_commit_callbacks, webhooks.deliver),
        webhooks=webhooks,
    )
