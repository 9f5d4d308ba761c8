"""The emulator checked against Stripe itself: the money scenarios of tests/billing/scenarios/ run
against api.stripe.com in test mode, each on a test clock of its own, through the same product
code (the tier sync, the /v1/ API and its limiter, the rollup, report and tier-switch jobs, the
reconcile, the thin-event receiver). Each one asserts its emulator twin's figures to the cent.

Opt-in: it runs only with STRIPE_CONTRACT_TESTS=1 and a test-mode key in STRIPE_TEST_SECRET_KEY,
and is skipped otherwise, on a laptop and in CI alike (CI cannot reach Stripe; a run may promise
it with MDK_SERVICES_REQUIRED=stripe, and then a missing key fails). See docs/stripe.md,
"Checking the emulator against Stripe". A run takes about half an hour, three to six minutes a
scenario, most of it waiting for test clocks to advance and meters to aggregate; one scenario
runs with ``-k`` (e.g. ``-k rolled_up_late``).

The twins (tests/billing/scenarios/; each story is written once, in
tests/billing/scenarios/stories.py, and run by both with their own driver):

- test_full_period.py: a full period with overage on Pro.
- test_late_rollup.py: usage rolled up after the final window is reported inside Stripe's
  finalization grace hour and lands on the period's invoice.
- test_tier_switch.py: Pro → Team → Pro in one period, each stretch invoiced at its own price.
- test_cancel.py: cancel at period end (customer portal) and cancel now with ``invoice_now``.
- test_payment_failed.py: the renewal's charge fails, the grace period runs out, the developer
  pays the open invoice and is restored.
- test_unknown_customer.py: the customer is deleted in the Dashboard, Stripe refuses the next
  report after accepting it (a meter error report, a thin event), the developer subscribes again
  and the operator re-sends the report.

Not here: test_meter_event_fault.py (a 500 on the first send) needs fault injection, which only
the emulator has; Stripe's idempotency behaviour it relies on is cited in docs/stripe.md.

How these runs differ from the emulator's, in general: tests/billing/stripe_contract.py (a test
clock per scenario, reconcile instead of webhooks, the API instead of the hosted pages). A test
whose moments differ from its twin's says so. Two more differences:

- Moments. Every usage a scenario reports must be dated in the past of real time and within
  Stripe's 35 days, so single-period scenarios start 33 days ago and two-period ones 41 days ago
  (``STARTS``); where the twin's timeline is longer than 35 days, its earliest usage moves
  towards the period's end. The figures do not depend on the moments.
- Licensed prorations. Stripe prorates the base prices of a tier switch (``create_prorations``,
  "Prorations", https://docs.stripe.com/billing/subscriptions/prorations); the emulator does not
  (its README). The tier-switch scenario checks the metered stretches and the next period's base
  to the cent, and that the invoice holds nothing else but those proration lines.
"""

from collections.abc import Callable, Iterator

import pytest
import stripe

from billing.stripe_api import stripe_client
from tests.billing.scenarios.stories import (
    cancel_at_period_end,
    cancel_now_with_invoice_now,
    deleted_customer_repaired,
    failed_renewal_paid_after_grace,
    full_period_with_overage,
    switch_up_and_back,
    usage_rolled_up_late,
)
from tests.billing.stripe_contract import (
    CONTRACT_METER_EVENT,
    OPT_IN,
    ContractScenario,
    contract_key,
)
from tests.services import not_configured

pytestmark = pytest.mark.django_db

# How many days before now each scenario's test clock starts: one period (28 to 31 days) ends at
# least two days before now; two periods leave room for the eight days after the first one.
STARTS = {"one period": 33, "two periods": 41}


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
    # A scenario spans months; the developer's browser session must outlive them.
    settings.SESSION_COOKIE_AGE = 400 * 86400
    monkeypatch.setattr(stripe, "api_base", stripe.DEFAULT_API_BASE)
    return stripe_client()


@pytest.fixture
def contract(
    real_stripe, monkeypatch, django_capture_on_commit_callbacks
) -> Iterator[Callable[[str], ContractScenario]]:
    """Starts a scenario on a test clock of its own (``STARTS``); deletes the clock afterwards,
    and with it the scenario's customers and subscriptions."""
    started: list[ContractScenario] = []

    def start(length: str) -> ContractScenario:
        scenario = ContractScenario.start(
            client=real_stripe,
            days_ago=STARTS[length],
            monkeypatch=monkeypatch,
            capture=django_capture_on_commit_callbacks,
        )
        started.append(scenario)
        return scenario

    yield start
    for scenario in started:
        scenario.delete_test_clock()


def test_a_full_period_with_overage_on_pro_is_invoiced_by_stripe_as_by_the_emulator(contract):
    full_period_with_overage(contract("one period"))


def test_usage_rolled_up_late_reaches_the_periods_invoice_on_stripe_as_on_the_emulator(contract):
    usage_rolled_up_late(contract("one period"))


def test_a_switch_up_and_back_bills_each_stretch_at_its_price_on_stripe_as_on_the_emulator(
    contract,
):
    switch_up_and_back(contract("one period"))


def test_cancel_at_period_end_bills_the_periods_usage_in_a_final_invoice_on_stripe(contract):
    cancel_at_period_end(contract("one period"))


def test_cancelling_now_with_invoice_now_bills_the_usage_so_far_on_stripe(contract):
    cancel_now_with_invoice_now(contract("one period"))


def test_a_failed_renewal_paid_after_the_grace_period_bills_the_usage_once_on_stripe(
    contract, mailoutbox
):
    """Twin: test_payment_failed.py. Its first busy stretch (four days into the period) is two
    days before the period's end here, so that the usage of the next period's first eight days
    fits Stripe's 35 days too. The card that declines is Stripe's test card that attaches and
    then fails every charge, ``pm_card_chargeCustomerFail`` ("Testing: declined payments",
    https://docs.stripe.com/testing#declined-payments). Stripe retries a failed renewal on its
    own schedule ("Automate payment retries",
    https://docs.stripe.com/billing/revenue-recovery/smart-retries; "the recommended default is
    8 tries within 2 weeks"): the retries in the grace week fail on the same card, and the
    test-mode account must not be set to give up on a subscription within that week."""
    failed_renewal_paid_after_grace(contract("two periods"), mailoutbox)


def test_a_report_for_a_deleted_customer_is_repaired_onto_the_new_subscription_on_stripe(
    contract, admin_client, admin_user
):
    """Twin: test_unknown_customer.py. Its first period's busy stretch (two days in) is two days
    before that period's end here, so that the second subscription's usage, eight days after it,
    fits Stripe's 35 days too. Stripe's meter error report cannot reach this machine: it is
    found among the account's v2 events and handed to the portal's receiver as the event
    destination would deliver it (``ContractScenario.deliver_meter_error``). The 120 units on
    the deleted customer's meter are not read back: its summary is not documented for a deleted
    customer; the first renewal shows them."""
    deleted_customer_repaired(contract("two periods"), admin_client, admin_user)
