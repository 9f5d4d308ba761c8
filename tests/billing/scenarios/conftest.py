"""Fixtures of the money scenarios: small tiers pushed to the emulator, the scenario's clock, and a
developer with a key, a browser session and the beat's jobs (tests/billing/conftest.py provides
the emulator, ``stripe_api``, and the webhook relay, ``webhooks``)."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
import requests
from django.test import Client

from billing.models import Tier
from billing.selectors import tier_default
from billing.services.catalog import tiers_sync_to_stripe
from billing.services.webhook_endpoint import event_destination_ensure
from billing.stripe_api import stripe_client
from devtools.stripe_emulator import Emulator
from portal.models import Account
from tests.billing.conftest import WebhookRelay, checkout_and_pay
from tests.billing.scenarios.scenario import (
    FINALIZATION_GRACE,
    HOURLY_RUN,
    PRO_TIER,
    TEAM_TIER,
    Beat,
    Developer,
    InvoiceFigures,
    PortalSide,
    ScenarioClock,
    customer_invoices,
    hour_floor,
    period_invoice,
)
from tests.factories import AccountFactory, ApiKeyFactory, PaidTierFactory


@dataclass
class MoneyTiers:
    free: Tier
    pro: Tier
    team: Tier


@pytest.fixture
def money_tiers(stripe_api, db) -> MoneyTiers:
    """Pro (``PRO_TIER``) and Team (``TEAM_TIER``), pushed to the emulator."""
    pro = PaidTierFactory(slug="pro", name="Pro", sort_order=10, **PRO_TIER)
    team = PaidTierFactory(slug="team", name="Team", sort_order=20, **TEAM_TIER)
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
class Scenario(PortalSide):
    """One developer's month (or two) on the portal, and what it takes to run it."""

    clock: ScenarioClock
    tiers: MoneyTiers
    account: Account
    browser: Client
    api: Developer
    beat: Beat
    webhooks: WebhookRelay
    capture: Callable[..., AbstractContextManager[Any]]

    @property
    def emulator(self) -> Emulator:
        return self.webhooks.emulator

    # The methods below are the emulator's side of what ``ContractScenario``
    # (tests/billing/stripe_contract.py) does against Stripe; the stories
    # (tests/billing/scenarios/stories.py) run on either.

    def sync(self) -> None:
        """Nothing to do: the emulator's clock moves with the scenario's."""

    def reconcile(self) -> None:
        """What Stripe has told the portal reaches it: the webhooks queued so far."""
        self.webhooks.deliver()

    def early_moment(self, started: datetime, end: datetime, after: timedelta) -> datetime:
        """The moment of a busy stretch ``after`` the hour the period [started, end) began."""
        return hour_floor(started) + after

    def receive_meter_errors(self) -> None:
        """The portal's event destination, through which Stripe's meter error reports arrive."""
        event_destination_ensure()

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

    def report_the_hour_of(self, moment: datetime) -> None:
        """The hourly report run that follows the hour of ``moment``."""
        self.clock.to(hour_floor(moment) + timedelta(hours=1) + HOURLY_RUN)
        self.beat.hourly_report()

    def close_period(
        self, end: datetime, *, settles: Literal["paid", "finalized", "failed"] = "paid"
    ) -> InvoiceFigures:
        """The period ending at ``end`` closes as it does in production: Stripe drafts the
        invoice at the end, the period-close job reports the final window minutes later,
        Stripe finalizes and charges the invoice an hour after the end. Returns that invoice
        (the emulator settles it at once; ``settles`` is for Stripe's waits)."""
        # The period-close job runs every five minutes, once the report's grace has passed.
        self.clock.to(end + timedelta(minutes=6))
        self.webhooks.deliver()
        self.beat.period_close_report()
        return self.invoice_settled(end)

    def invoice_settled(self, end: datetime) -> InvoiceFigures:
        """The finalization grace hour passes; the invoice billing the period ending at ``end``,
        its webhooks delivered."""
        self.clock.to(max(self.clock.now, end + FINALIZATION_GRACE + timedelta(minutes=1)))
        self.webhooks.deliver()
        invoice = period_invoice(self.invoices(), (self.tiers.pro, self.tiers.team), end)
        assert invoice is not None
        return invoice

    def invoices_settled(self, count: int) -> list[InvoiceFigures]:
        """The customer's ``count`` invoices (the emulator finalizes on time, no waiting)."""
        invoices = self.invoices()
        assert len(invoices) == count, invoices
        return invoices

    def renewal_declined(self, end: datetime) -> InvoiceFigures:
        """The card now declines: the renewal of the period ending at ``end`` fails when the
        emulator finalizes it (its emails sent). Returns that invoice."""
        self.emulator.set_card_declines(self.customer_id, True)
        with self.capture(execute=True):
            return self.close_period(end)

    def pay(self, invoice: Any) -> None:
        """ "Pay" on the hosted invoice page of ``invoice`` (as the billing page lists it)."""
        paid = requests.post(invoice.hosted_invoice_url + "/pay", allow_redirects=False, timeout=5)
        assert paid.status_code == 303, paid.text

    def cancel_now_with_invoice_now(self) -> None:
        """As an operator does it (the Dashboard, or the API): cancel now with a final
        invoice; its webhooks delivered."""
        stripe_client().v1.subscriptions.cancel(
            self.refresh().stripe_subscription_id, params={"invoice_now": True}
        )
        self.webhooks.deliver()

    def delete_in_the_dashboard(self) -> None:
        """What deleting the customer in the Dashboard does on Stripe: its subscription is
        cancelled at once, then the customer is gone. The emulator's customer delete does not
        cancel the subscription itself, so the cancel is spelled out first, with Stripe's
        defaults (no final invoice, Cancel a subscription,
        https://docs.stripe.com/api/subscriptions/cancel; the docs do not say whether a deletion
        makes one, and here it would bill nothing: no usage of the cancelled period reached
        Stripe before the deletion). Its webhooks delivered."""
        customer_id = self.customer_id
        client = stripe_client()
        client.v1.subscriptions.cancel(self.refresh().stripe_subscription_id)
        client.v1.customers.delete(customer_id)
        self.webhooks.deliver()

    def deliver_meter_error(self, identifier: str) -> None:
        """The emulator's meter error report (a thin event) went out with the report's run and
        was delivered then; whatever else is queued goes now."""
        self.webhooks.deliver()

    def check_deleted_customers_meter(self, customer_id: str, units: int) -> None:
        """The deleted customer's meter still holds what it was billed for, and no more."""
        assert self.emulator.meter_event_total(customer_id, self.tiers.pro.stripe_meter_id) == units

    def base_prorations(self, renewal: InvoiceFigures, renews: datetime) -> int:
        """Licensed prices are not prorated by the emulator (its README)."""
        return 0

    def wait_until_counted(self) -> None:
        """Nothing to wait for: the emulator counts meter events as it takes them."""

    def wait_for_meter_total(
        self, units: int, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        assert self.meter_total(start, end) == units

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
        capture=django_capture_on_commit_callbacks,
    )
