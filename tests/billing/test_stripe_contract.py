"""The emulator checked against Stripe itself: the full-period scenario
(tests/billing/scenarios/test_full_period.py) run against api.stripe.com in test mode, on a test
clock, through the same product code: the tier sync, the /v1/ API and its limiter, the rollup and
report jobs, the reconcile that reads the subscription and invoices back. Its invoice must match
the emulator's to the cent.

Opt-in: it runs only with STRIPE_CONTRACT_TESTS=1 and a test-mode key in STRIPE_TEST_SECRET_KEY,
and is skipped otherwise, on a laptop and in CI alike (CI cannot reach Stripe; a run may promise
it with MDK_SERVICES_REQUIRED=stripe, and then a missing key fails). See docs/stripe.md,
"Checking the emulator against Stripe".

How it differs from the emulator run, and why:

- Test clocks ("Test your integration with test clocks",
  https://docs.stripe.com/billing/testing/test-clocks; "API and advanced usage",
  https://docs.stripe.com/billing/testing/test-clocks/api-advanced-usage): a clock is created at
  a frozen time, a customer is attached to it at creation (``test_clock``), the subscription
  follows its time, and ``advance`` moves it forward only, at most two billing intervals, and
  asynchronously (the clock is ``advancing`` until it is ``ready``). Deleting the clock deletes
  its customers and subscriptions.
- Checkout's hosted page needs a browser and a card form, so the subscription is created as
  Checkout would create it (base price with quantity 1, metered price without quantity, the
  account in the metadata), for a customer with a test card (``pm_card_visa``), and the account
  reads it with the operator's re-sync (``subscriptions_reconcile``) instead of a webhook:
  Stripe cannot reach this machine.
- A meter event's timestamp "must be within the past 35 calendar days or up to 5 minutes in the
  future" (Create a billing meter event, https://docs.stripe.com/api/billing/meter-event/create).
  The clock starts two days in the past, and it is advanced past each window before that
  window is reported, so the events are in the past both of the real time and of the test
  clock's. The period's last minutes (in the real future) are therefore not used here.
- Meter events are aggregated asynchronously ("Record usage for billing with the API",
  https://docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api): the test waits
  until the meter event summary shows every reported unit before it closes the period.
"""

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import stripe
from django.test import Client
from djstripe.models import Customer

from billing.models import MeterReport
from billing.services.catalog import tiers_sync_to_stripe
from billing.services.reconcile import invoices_reconcile, subscriptions_reconcile
from billing.stripe_api import stripe_client
from tests.billing.scenarios.scenario import (
    HOURLY_RUN,
    PRO_TIER,
    Beat,
    Developer,
    ScenarioClock,
    busy_stretch,
    customer_invoices,
    hour_floor,
    metered_cents,
    period_invoice,
)
from tests.factories import AccountFactory, ApiKeyFactory, PaidTierFactory
from tests.services import not_configured

pytestmark = pytest.mark.django_db

OPT_IN = "STRIPE_CONTRACT_TESTS"
# A meter of its own, so a contract run never adds to a meter the account bills with.
CONTRACT_METER_EVENT = "meterdesk_contract_units"
# Stripe works asynchronously here; these bound the waits (seconds).
CLOCK_ADVANCE_TIMEOUT = 300
USAGE_VISIBLE_TIMEOUT = 300
INVOICE_PAID_TIMEOUT = 300
POLL_SECONDS = 3


def contract_key() -> str | None:
    """The test-mode key to use, when contract tests were asked for; None otherwise."""
    key = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
    if os.environ.get(OPT_IN) == "1" and key.startswith("sk_test_"):
        return key
    return None


@pytest.fixture
def real_stripe(settings, monkeypatch) -> stripe.StripeClient:
    """The portal pointed at api.stripe.com in test mode (our client and dj-stripe's)."""
    key = contract_key()
    if key is None:
        not_configured(
            "stripe",
            f"Stripe contract tests are opt-in: set {OPT_IN}=1 and STRIPE_TEST_SECRET_KEY="
            "sk_test_... (they call api.stripe.com in test mode)",
        )
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_TEST_SECRET_KEY = key
    settings.STRIPE_API_BASE = ""
    settings.STRIPE_METER_EVENT_NAME = CONTRACT_METER_EVENT
    settings.SESSION_COOKIE_AGE = 400 * 86400
    monkeypatch.setattr(stripe, "api_base", stripe.DEFAULT_API_BASE)
    return stripe_client()


def _wait(what: str, timeout: float, done: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = done()
        if result:
            return result
        assert time.monotonic() < deadline, f"Stripe did not get there in {timeout} s: {what}"
        time.sleep(POLL_SECONDS)


@pytest.fixture
def test_clock(real_stripe) -> Iterator[Any]:
    """A Stripe test clock frozen two days ago; deleted afterwards with its customers."""
    frozen = int(time.time()) - 2 * 86400
    clock = real_stripe.v1.test_helpers.test_clocks.create(
        params={"frozen_time": frozen, "name": f"meterdesk contract {uuid.uuid4().hex[:8]}"}
    )
    yield clock
    real_stripe.v1.test_helpers.test_clocks.delete(clock.id)


def advance_test_clock(client: stripe.StripeClient, clock_id: str, moment: datetime) -> None:
    """Move the test clock to ``moment`` (if later) and wait until it is ``ready``."""
    clocks = client.v1.test_helpers.test_clocks
    if clocks.retrieve(clock_id).frozen_time >= int(moment.timestamp()):
        return
    clocks.advance(clock_id, params={"frozen_time": int(moment.timestamp())})

    def ready() -> bool:
        status = clocks.retrieve(clock_id).status
        assert status in ("advancing", "ready"), f"test clock {clock_id} is {status}"
        return status == "ready"

    _wait(f"test clock {clock_id} at {moment}", CLOCK_ADVANCE_TIMEOUT, ready)


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


def test_a_full_period_with_overage_on_pro_is_invoiced_by_stripe_as_by_the_emulator(
    real_stripe, test_clock, monkeypatch, django_capture_on_commit_callbacks
):
    client = real_stripe
    frozen = datetime.fromtimestamp(test_clock.frozen_time, UTC)
    clock = ScenarioClock(frozen - timedelta(minutes=2), move_stripe=lambda moment: None)
    clock.install(monkeypatch)
    pro = PaidTierFactory(slug="contract-pro", name="Meterdesk contract Pro", **PRO_TIER)
    tiers_sync_to_stripe(tiers=[pro])
    pro.refresh_from_db()
    assert pro.stripe_base_price is not None and pro.stripe_metered_price is not None
    account = AccountFactory()
    api = Developer(client=Client(), key=ApiKeyFactory(account=account).plaintext, segment="free")
    beat = Beat(django_capture_on_commit_callbacks, deliver=lambda: None)

    # On the free tier first: never billed.
    assert api.lookup(3) == [200] * 3
    assert api.compute() == [403]

    # The customer on the test clock with a test card, and the subscription Checkout creates.
    customer = client.v1.customers.create(
        params={
            "email": account.email,
            "test_clock": test_clock.id,
            "payment_method": "pm_card_visa",
            "metadata": {"account_id": str(account.pk)},
        }
    )
    # The test token is attached as a card of its own id; that card pays the invoices.
    [card] = client.v1.payment_methods.list(params={"customer": customer.id}).data
    customer = client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    account.stripe_customer = Customer.sync_from_stripe_data(customer)
    account.save(update_fields=["stripe_customer"])
    metadata = {"account_id": str(account.pk), "tier": pro.slug}
    client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [
                {"price": pro.stripe_base_price.id, "quantity": 1},
                {"price": pro.stripe_metered_price.id},
            ],
            "metadata": metadata,
        }
    )
    subscriptions_reconcile(account_ids=[account.pk])
    account.refresh_from_db()
    assert (account.tier, account.payment_status) == (pro, "active")
    started, end = account.period_start, account.period_end
    assert end is not None
    clock.catch_up(started)
    api.segment = "pro"

    def hourly_report_at(moment: datetime) -> None:
        clock.to(moment)
        advance_test_clock(client, test_clock.id, moment)
        beat.hourly_report()

    # The first afternoon: computes, a burst past the rate limit, refused calls.
    first = clock.to(hour_floor(started) + timedelta(hours=1, minutes=10))
    assert busy_stretch(api, clock, pro, computes=8) == 40 + 60
    hourly_report_at(hour_floor(first) + timedelta(hours=1) + HOURLY_RUN)

    # A day later, a busy minute just inside the burst.
    busy = clock.to(hour_floor(started) + timedelta(days=1, minutes=30))
    assert api.lookup(45) == [200] * 45
    assert api.compute(3) == [200] * 3
    hourly_report_at(hour_floor(busy) + timedelta(hours=1) + HOURLY_RUN)

    billed = api.admitted["pro"]
    assert billed == 40 + 60 + 45 + 15
    assert not MeterReport.objects.exclude(status=MeterReport.Status.SENT).exists()
    assert pro.stripe_meter_id
    _wait(
        f"{billed} units in the meter event summary",
        USAGE_VISIBLE_TIMEOUT,
        # Up to now (not the period's end, which is still ahead of real time).
        lambda: (
            meter_summary(client, pro.stripe_meter_id, customer.id, started, clock.now) == billed
        ),
    )

    # The period closes: the period-close job has nothing left to send; Stripe drafts the
    # renewal at the end and finalizes and charges it after its grace hour.
    reports = MeterReport.objects.count()
    clock.to(end + HOURLY_RUN)
    advance_test_clock(client, test_clock.id, clock.now)
    beat.period_close_report()
    assert MeterReport.objects.count() == reports
    clock.to(end + timedelta(hours=2))
    advance_test_clock(client, test_clock.id, clock.now)

    def renewal_paid() -> Any:
        invoices = customer_invoices(client, customer.id)
        renewals = [i for i in invoices if i.billing_reason == "subscription_cycle"]
        return renewals and renewals[0].status == "paid" and invoices

    invoices = _wait("the renewal invoice finalized and paid", INVOICE_PAID_TIMEOUT, renewal_paid)
    renewal = period_invoice(invoices, pro, end)
    assert renewal.billing_reason == "subscription_cycle"
    assert renewal.units(pro) == billed  # every admitted unit, once
    assert renewal.cents(pro) == metered_cents(pro, billed) == 21  # 60 x 0.35¢
    assert renewal.cents(pro, metered=False) == pro.base_price_cents
    assert renewal.amount_due == renewal.amount_paid == 2900 + 21

    # The portal reads it back as the daily reconcile does, and the developer sees it.
    subscriptions_reconcile(account_ids=[account.pk])
    invoices_reconcile(account_ids=[account.pk])
    browser = Client()
    browser.force_login(account.owner)
    assert "$29.21" in browser.get("/billing/").content.decode()
