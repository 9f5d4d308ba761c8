"""The money scenarios' twin against Stripe itself (tests/billing/test_stripe_contract.py): a
developer's month on a Stripe test clock, through the same product code as against the emulator,
with the few steps Stripe cannot take from this machine done the way the product itself would.

What differs from the emulator runs (tests/billing/scenarios/conftest.py, ``Scenario``), and why:

- **Time.** A test clock ("Test your integration with test clocks",
  https://docs.stripe.com/billing/testing/test-clocks; "API and advanced usage",
  https://docs.stripe.com/billing/testing/test-clocks/api-advanced-usage) is created frozen at a
  moment in the past, the customers are attached to it at creation (``test_clock``), and
  ``advance`` moves it forward only, at most two billing intervals at a time, asynchronously
  (``advancing`` until ``ready``). Advancing is slow, so the scenario's clock moves on its own and
  the test clock is brought to it (``ContractScenario.sync``) only before Stripe is called: before
  every job that reports usage or switches tiers (``ContractBeat``), every reconcile, every call
  the test makes itself. Meter events are then dated before the test clock's time too.
- **Stripe's 35-day window.** A meter event's timestamp "must be within the past 35 calendar days
  or up to 5 minutes in the future" of real time (Create a billing meter event,
  https://docs.stripe.com/api/billing/meter-event/create). A scenario therefore starts far enough
  in the past that every window it reports has ended in real time, and recently enough that its
  first one is younger than 35 days when it is sent (``report_the_hour_of`` checks both). A period
  that ends after real time is closed (its invoice drafted, finalized, paid) with nothing left to
  report.
- **No webhooks.** Stripe cannot reach this machine, so where the emulator run delivers webhooks
  the account is brought in line by the operator's re-sync, the daily reconcile
  (``subscriptions_reconcile``, ``invoices_reconcile``): the same rule the webhooks apply.
- **No hosted pages.** Checkout, the customer portal and the hosted invoice page need a browser
  and a card form; their effect is created through the API, as those pages create it: the
  subscription Checkout would create (``upgrade``), the portal's card update and
  cancel-at-period-end (``customer_portal``), the invoice page's "Pay" (``pay``), the Dashboard's
  customer deletion (``delete_in_the_dashboard``).
- **Aggregation is eventual.** Stripe aggregates meter events asynchronously ("Record usage for
  billing with the API",
  https://docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api): before a period's
  invoice is finalized, the run waits until the meter event summary shows every unit reported to
  the customer (``wait_until_counted``), and it waits for each invoice to be finalized and paid.
- **Shared test-mode account.** Every run uses the same test-mode account, whose meter event
  identifiers (``mdk-<account id>-<window start>``) must be unique for 24 hours, so each scenario's
  account gets an id drawn at random rather than the test database's next one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar

import pytest
import stripe
from django.test import Client
from djstripe.models import Customer

from billing.models import MeterReport, StripeEventDestination, Tier
from billing.selectors import tier_default
from billing.services.catalog import tiers_sync_to_stripe
from billing.services.reconcile import invoices_reconcile, subscriptions_reconcile
from billing.services.thin_events import METER_ERROR_EVENTS
from billing.stripe_api import as_dict
from portal.models import Account
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

OPT_IN = "STRIPE_CONTRACT_TESTS"
# A meter of its own, so a contract run never adds to a meter the account bills with.
CONTRACT_METER_EVENT = "meterdesk_contract_units"
# Stripe works asynchronously here; these bound the waits (seconds).
CLOCK_ADVANCE_TIMEOUT = 300
USAGE_VISIBLE_TIMEOUT = 300
INVOICE_SETTLED_TIMEOUT = 300
METER_ERROR_TIMEOUT = 600
POLL_SECONDS = 3
# Stripe takes meter events dated up to 35 days back; an hour's margin for the run's own length.
STRIPE_ACCEPTS_PAST = timedelta(days=35) - timedelta(hours=1)
# Every reported window must have ended this long before real time.
REAL_TIME_MARGIN = timedelta(minutes=5)

T = TypeVar("T")
# How an invoice must end up: paid; finalized (paid, or open); or its charge failed.
Settles = Literal["paid", "finalized", "failed"]


def contract_key() -> str | None:
    """The test-mode key to use, when contract tests were asked for; None otherwise."""
    key = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
    if os.environ.get(OPT_IN) == "1" and key.startswith("sk_test_"):
        return key
    return None


def wait_for(
    what: str, timeout: float, probe: Callable[[], T], done: Callable[[T], bool] = bool
) -> T:
    """Ask Stripe until ``done`` holds for its answer; fail with the last answer seen."""
    deadline = time.monotonic() + timeout
    while True:
        seen = probe()
        if done(seen):
            return seen
        assert time.monotonic() < deadline, (
            f"Stripe did not get there in {timeout:.0f} s: {what} (last seen: {seen!r})"
        )
        time.sleep(POLL_SECONDS)


def advance_test_clock(client: stripe.StripeClient, clock_id: str, moment: datetime) -> None:
    """Move the test clock to ``moment`` (if later) and wait until it is ``ready``."""
    clocks = client.v1.test_helpers.test_clocks
    if clocks.retrieve(clock_id).frozen_time >= int(moment.timestamp()):
        return
    clocks.advance(clock_id, params={"frozen_time": int(moment.timestamp())})

    def status() -> str:
        status = clocks.retrieve(clock_id).status
        assert status in ("advancing", "ready"), f"test clock {clock_id} is {status}"
        return status

    wait_for(f"test clock {clock_id} at {moment}", CLOCK_ADVANCE_TIMEOUT, status, "ready".__eq__)


def meter_summary(
    client: stripe.StripeClient, meter_id: str, customer_id: str, start: datetime, end: datetime
) -> int:
    """Units Stripe aggregated for the customer on the meter in [start, end), whole minutes
    (List billing meter event summaries, https://docs.stripe.com/api/billing/meter-event-summary/list)."""
    start_ts = int(start.timestamp()) // 60 * 60
    end_ts = -(-int(end.timestamp()) // 60) * 60
    summaries = client.v1.billing.meters.event_summaries.list(
        meter_id, params={"customer": customer_id, "start_time": start_ts, "end_time": end_ts}
    )
    return int(sum(Decimal(str(summary.aggregated_value)) for summary in summaries.data))


def signed_thin_notification(event: dict[str, Any], secret: str) -> tuple[str, str]:
    """The body Stripe posts to an event destination for ``event`` (the thin notification: the
    event without its ``data``) and its ``Stripe-Signature`` header, ``t=<unix>,v1=<HMAC-SHA256
    of "t.body" with the destination's secret>`` ("Event destinations: thin events",
    https://docs.stripe.com/event-destinations; "Verify webhook signatures manually",
    https://docs.stripe.com/webhooks#verify-manually)."""
    keys = ("id", "object", "type", "livemode", "created", "context", "related_object", "reason")
    body = json.dumps({key: event.get(key) for key in keys})
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return body, f"t={timestamp},v1={digest.hexdigest()}"


@dataclass
class ContractTiers:
    pro: Tier
    team: Tier

    @property
    def free(self) -> Tier:
        return tier_default()


def contract_tiers() -> ContractTiers:
    """The emulator scenarios' Pro and Team, under slugs of their own, pushed to Stripe (found,
    not created again, after the first run)."""
    pro = PaidTierFactory(
        slug="contract-pro", name="Meterdesk contract Pro", sort_order=10, **PRO_TIER
    )
    team = PaidTierFactory(
        slug="contract-team", name="Meterdesk contract Team", sort_order=20, **TEAM_TIER
    )
    tiers_sync_to_stripe(tiers=[pro, team])
    for tier in (pro, team):
        tier.refresh_from_db()
        assert tier.stripe_base_price is not None and tier.stripe_metered_price is not None
    return ContractTiers(pro=pro, team=team)


def unshared_account_id() -> int:
    """An account id no other contract run is likely to have used within 24 hours (see the
    module's docstring)."""
    return 1_000_000_000 + secrets.randbelow(1_000_000_000)


class ContractBeat(Beat):
    """The beat's jobs, each run once Stripe's test clock has caught up with the scenario."""

    def __init__(self, capture_on_commit: Callable[..., Any], sync: Callable[[], None]):
        super().__init__(capture_on_commit, deliver=lambda: None)
        self._sync = sync

    def hourly_report(self, *, rollup: bool = True) -> None:
        self._sync()
        super().hourly_report(rollup=rollup)

    def apply_tier_switches(self) -> None:
        self._sync()
        super().apply_tier_switches()

    def period_close_report(self) -> None:
        self._sync()
        super().period_close_report()


@dataclass
class ContractScenario(PortalSide):
    """One developer's month (or two) on Stripe test mode, on a test clock of its own."""

    client: stripe.StripeClient
    test_clock_id: str
    clock: ScenarioClock
    tiers: ContractTiers
    account: Account
    browser: Client
    api: Developer
    capture: Callable[..., AbstractContextManager[Any]]
    began: datetime
    beat: ContractBeat = field(init=False)

    def __post_init__(self) -> None:
        self.beat = ContractBeat(self.capture, self.sync)

    @classmethod
    def start(
        cls,
        *,
        client: stripe.StripeClient,
        days_ago: int,
        monkeypatch: pytest.MonkeyPatch,
        capture: Callable[..., AbstractContextManager[Any]],
    ) -> ContractScenario:
        """A verified developer on the free tier, signed in, with an API key, two minutes
        before the test clock's frozen time, ``days_ago`` days before now."""
        frozen = int(time.time()) - days_ago * 86400
        test_clock = client.v1.test_helpers.test_clocks.create(
            params={"frozen_time": frozen, "name": f"meterdesk contract {uuid.uuid4().hex[:8]}"}
        )
        began = datetime.fromtimestamp(frozen, UTC) - timedelta(minutes=2)
        clock = ScenarioClock(began, move_stripe=lambda moment: None)
        clock.install(monkeypatch)
        tiers = contract_tiers()
        account = AccountFactory(pk=unshared_account_id())
        browser = Client()
        browser.force_login(account.owner)
        key = ApiKeyFactory(account=account)
        return cls(
            client=client,
            test_clock_id=test_clock.id,
            clock=clock,
            tiers=tiers,
            account=account,
            browser=browser,
            api=Developer(client=Client(), key=key.plaintext, segment="free"),
            capture=capture,
            began=began,
        )

    def delete_test_clock(self) -> None:
        """Deleting a test clock deletes its customers and their subscriptions."""
        self.client.v1.test_helpers.test_clocks.delete(self.test_clock_id)

    # --- Time ----------------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring Stripe's test clock to the scenario's now."""
        advance_test_clock(self.client, self.test_clock_id, self.clock.now)

    def early_moment(self, started: datetime, end: datetime, after: timedelta) -> datetime:
        """The moment of a busy stretch ``after`` the start of the period [started, end) in a
        scenario of two periods: two days before the period's end here, so that the next
        period's first days fit Stripe's 35 days too (see the module's docstring)."""
        moment = hour_floor(end) - timedelta(days=2)
        assert moment > started
        return moment

    def assert_stripe_takes(self, start: datetime, end: datetime) -> None:
        """Usage dated in [start, end) is within the window Stripe takes meter events in now."""
        real_now = datetime.now(UTC)
        assert real_now - STRIPE_ACCEPTS_PAST < start and end <= real_now - REAL_TIME_MARGIN, (
            f"this scenario's usage at {start:%Y-%m-%d %H:%M}-{end:%Y-%m-%d %H:%M} does not fit "
            f"Stripe's 35 days before {real_now:%Y-%m-%d %H:%M} (its period's month is too long or "
            "its start too far back)"
        )

    # --- The account as Stripe has it ---------------------------------------------------------

    def reconcile(self) -> None:
        """What the emulator run's webhooks do: the account and its invoices read back from
        Stripe (the operator's re-sync, the daily reconcile), on-commit work (emails) run."""
        self.sync()
        with self.capture(execute=True):
            subscriptions_reconcile(account_ids=[self.account.pk])
            invoices_reconcile(account_ids=[self.account.pk])

    # --- What the hosted pages would do -------------------------------------------------------

    def upgrade(self, tier: Tier, *, segment: str = "pro") -> datetime:
        """What Checkout does when the developer pays for ``tier``: a customer (on the test clock)
        with a card, and a subscription of the base price (quantity 1) and the metered price (no
        quantity), the account in its metadata; then the account reads it back. Returns when the
        subscription (and its first period) started; the clock is there or later. From then on
        the developer's calls count as ``segment``."""
        self.sync()
        account = self.refresh()
        customer = self.client.v1.customers.create(
            params={
                "email": account.email,
                "test_clock": self.test_clock_id,
                "metadata": {"account_id": str(account.pk)},
            }
        )
        self.use_card("pm_card_visa", customer_id=customer.id)
        customer = self.client.v1.customers.retrieve(customer.id)
        account.stripe_customer = Customer.sync_from_stripe_data(customer)
        account.save(update_fields=["stripe_customer"])
        assert tier.stripe_base_price is not None and tier.stripe_metered_price is not None
        self.client.v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [
                    {"price": tier.stripe_base_price.id, "quantity": 1},
                    {"price": tier.stripe_metered_price.id},
                ],
                "metadata": {"account_id": str(account.pk), "tier": tier.slug},
            }
        )
        self.reconcile()
        account = self.refresh()
        assert (account.tier, account.payment_status) == (tier, "active")
        self.clock.catch_up(account.period_start)
        self.api.segment = segment
        return account.period_start

    def customer_portal(self, action: Literal["cancel_at_period_end", "update_card"]) -> None:
        """One action on the customer portal, as the portal takes it (Meterdesk's configuration
        cancels ``at_period_end``: The Customer portal configuration object,
        https://docs.stripe.com/api/customer_portal/configurations/object); the account reads it
        back."""
        self.sync()
        if action == "cancel_at_period_end":
            subscription_id = self.refresh().stripe_subscription_id
            self.client.v1.subscriptions.update(
                subscription_id, params={"cancel_at_period_end": True}
            )
        else:
            self.use_card("pm_card_visa")
        self.reconcile()

    def delete_in_the_dashboard(self) -> None:
        """Deleting the developer's customer in the Dashboard: its subscription is cancelled at
        once, without a final invoice, and the customer is gone (Delete a customer,
        https://docs.stripe.com/api/customers/delete). The cancellation is read back before the
        customer goes, as its webhook would bring it: the docs do not say whether Stripe still
        lists a deleted customer's subscriptions (the reconcile's way in)."""
        account = self.refresh()
        customer_id = self.customer_id
        self.sync()
        self.client.v1.subscriptions.cancel(account.stripe_subscription_id)
        self.reconcile()
        self.client.v1.customers.delete(customer_id)

    def use_card(self, token: str, *, customer_id: str | None = None) -> str:
        """A test card attached to the customer and made the one its invoices are charged to, as
        the customer portal's card update does. Returns the card's id (Stripe attaches a test
        token as a payment method of its own)."""
        customer_id = customer_id or self.customer_id
        card = self.client.v1.payment_methods.attach(token, params={"customer": customer_id})
        self.client.v1.customers.update(
            customer_id, params={"invoice_settings": {"default_payment_method": card.id}}
        )
        return card.id

    def pay(self, invoice: Any) -> None:
        """The hosted invoice page's "Pay", with the customer's card."""
        self.sync()
        paid = self.client.v1.invoices.pay(invoice.id)
        assert paid.status == "paid", paid.status

    def cancel_now_with_invoice_now(self) -> None:
        """As an operator does it (the Dashboard, or the API): cancel now with a final
        invoice; the account reads it back."""
        self.sync()
        self.client.v1.subscriptions.cancel(
            self.refresh().stripe_subscription_id, params={"invoice_now": True}
        )
        self.reconcile()

    def renewal_declined(self, end: datetime) -> InvoiceFigures:
        """The card now declines (Stripe's test card that attaches and then fails every
        charge, ``pm_card_chargeCustomerFail``, "Testing: declined payments",
        https://docs.stripe.com/testing#declined-payments): the renewal of the period ending at
        ``end`` fails when Stripe finalizes it. Returns that invoice."""
        self.use_card("pm_card_chargeCustomerFail")
        return self.close_period(end, settles="failed")

    # --- The developer and the beat -----------------------------------------------------------

    def report_the_hour_of(self, moment: datetime) -> None:
        """The hourly report run that follows the hour of ``moment``; Stripe takes every report."""
        hour = hour_floor(moment)
        self.assert_stripe_takes(hour, hour + timedelta(hours=1))
        self.clock.to(hour + timedelta(hours=1) + HOURLY_RUN)
        self.beat.hourly_report()
        self.assert_reports_taken()

    # --- Periods and invoices -----------------------------------------------------------------

    def close_period(self, end: datetime, *, settles: Settles = "paid") -> InvoiceFigures:
        """The period ending at ``end`` closes as in production: Stripe renews and drafts the
        invoice at the end, the period-close job reports the final window minutes later, Stripe
        finalizes and charges the invoice an hour after the end. Returns that invoice."""
        self.clock.to(end + timedelta(minutes=6))
        self.reconcile()
        self.beat.period_close_report()
        self.assert_reports_taken()
        return self.invoice_settled(end, settles=settles)

    def invoice_settled(self, end: datetime, *, settles: Settles = "paid") -> InvoiceFigures:
        """Once Stripe has counted every unit reported, the finalization grace hour passes, and
        the invoice billing the period ending at ``end`` settles; the account reads it back."""
        self.wait_until_counted()
        self.clock.to(max(self.clock.now, end + FINALIZATION_GRACE + timedelta(minutes=1)))
        self.sync()
        tiers = (self.tiers.pro, self.tiers.team)
        invoice = wait_for(
            f"the invoice of the period ending {end} {settles}",
            INVOICE_SETTLED_TIMEOUT,
            lambda: period_invoice(self.invoices(), tiers, end),
            lambda invoice: invoice is not None and self._settled(invoice, settles),
        )
        assert invoice is not None
        self.reconcile()
        return invoice

    def invoices_settled(self, count: int) -> list[InvoiceFigures]:
        """The customer's ``count`` invoices, once none of them is a draft."""
        return wait_for(
            f"{count} finalized invoices",
            INVOICE_SETTLED_TIMEOUT,
            self.invoices,
            lambda invoices: len(invoices) == count and all(i.status != "draft" for i in invoices),
        )

    def _settled(self, invoice: InvoiceFigures, settles: Settles) -> bool:
        if settles == "paid":
            return invoice.status == "paid"
        if settles == "finalized":
            return invoice.status != "draft"
        # Failed: its charge was tried and declined, and the subscription is past due for it.
        subscription = self.client.v1.subscriptions.retrieve(self.refresh().stripe_subscription_id)
        return invoice.status == "open" and subscription.status == "past_due"

    def invoices(self) -> list[InvoiceFigures]:
        return customer_invoices(self.client, self.customer_id)

    def base_prorations(self, renewal: InvoiceFigures, renews: datetime) -> int:
        """What the renewal at ``renews`` bills for the base prices besides the next period's:
        Stripe's prorations of the bases for a tier switch ("Prorations",
        https://docs.stripe.com/billing/subscriptions/prorations)."""
        tiers = (self.tiers.pro, self.tiers.team)
        return sum(
            line.cents
            for line in renewal.of(*tiers, metered=False)
            if line.period_start != int(renews.timestamp())
        )

    # --- The meter ----------------------------------------------------------------------------

    def meter_total(self, start: datetime | None = None, end: datetime | None = None) -> int:
        """Units Stripe aggregated on the meter for the account's customer, [start, end)."""
        meter_id = self.tiers.pro.stripe_meter_id
        assert meter_id
        # Every event is dated before now, in real time and on the scenario's clock.
        until = end or min(self.clock.now, datetime.now(UTC)) + timedelta(minutes=1)
        return meter_summary(self.client, meter_id, self.customer_id, start or self.began, until)

    def wait_for_meter_total(
        self, units: int, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        wait_for(
            f"{units} units in the meter event summary",
            USAGE_VISIBLE_TIMEOUT,
            lambda: self.meter_total(start, end),
            units.__eq__,
        )

    def wait_until_counted(self) -> None:
        """Stripe's summary shows every unit reported to the account's customer."""
        customer_id = self.customer_id
        sent = list(
            MeterReport.objects.filter(
                account=self.account,
                stripe_customer_id=customer_id,
                status=MeterReport.Status.SENT,
            )
        )
        if sent:
            self.wait_for_meter_total(sum(report.units for report in sent))

    def receive_meter_errors(self) -> None:
        """Nothing to set up: ``deliver_meter_error`` posts to a destination of its own."""

    def check_deleted_customers_meter(self, customer_id: str, units: int) -> None:
        """Not read back on Stripe: the meter event summary of a deleted customer is not
        documented; the first renewal shows its units."""

    def deliver_meter_error(self, identifier: str) -> None:
        """Stripe's meter error report naming the event ``identifier``, as the portal's event
        destination would receive it. Stripe cannot deliver to this machine, so the event is
        found among the account's v2 events (List all Event objects, which go "back up to 30
        days", https://docs.stripe.com/api/v2/core/events/list) and its thin notification is
        posted to ``/stripe/events/`` signed with the secret of a destination known only here;
        the portal fetches the event from Stripe and applies it. Until then Stripe has taken the
        report (sent)."""
        assert MeterReport.objects.get(identifier=identifier).status == MeterReport.Status.SENT
        meter_id = self.tiers.pro.stripe_meter_id
        assert meter_id
        event = wait_for(
            f"a meter error report naming {identifier}",
            METER_ERROR_TIMEOUT,
            lambda: self._meter_error_naming(meter_id, identifier),
        )
        assert event is not None
        secret = f"whsec_{secrets.token_hex(24)}"
        StripeEventDestination.objects.create(
            stripe_id=f"ed_contract_{uuid.uuid4().hex[:12]}",
            url="http://testserver/stripe/events/",
            secret=secret,
            enabled_events=list(METER_ERROR_EVENTS),
        )
        body, signature = signed_thin_notification(event, secret)
        response = Client().post(
            "/stripe/events/",
            body,
            content_type="application/json",
            headers={"Stripe-Signature": signature},
        )
        assert response.status_code == 200, response.content

    def _meter_error_naming(self, meter_id: str, identifier: str) -> dict[str, Any] | None:
        listing = self.client.v2.core.events.list(
            params={"object_id": meter_id, "types": list(METER_ERROR_EVENTS)}
        )
        for listed in listing.auto_paging_iter():
            event = as_dict(self.client.v2.core.events.retrieve(listed.id))
            reason = (event.get("data") or {}).get("reason") or {}
            named = {
                (sample.get("request") or {}).get("identifier")
                for error_type in reason.get("error_types") or []
                for sample in error_type.get("sample_errors") or []
            }
            if identifier in named:
                return event
        return None
