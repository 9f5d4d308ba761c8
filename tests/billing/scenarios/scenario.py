"""What every money scenario shares: one clock for the portal, the limiter and Stripe; a developer
who calls the API and counts what was admitted; the beat's jobs; and the invoice read back from
Stripe, with the amount it must show.

Time. A scenario lives on its own clock (``ScenarioClock``), which stands still until told to
move: Django's ``timezone.now`` (the API's periods and quotas, the webhooks' grace dates, the
jobs' windows), the in-process limiter (the minute a call is counted in, the rate limit) and
Stripe's clock (the emulator's, or a test clock) all read it. Because nothing moves by itself,
a burst of calls always meets the same rate limit, and the scenario's moments are chosen
relative to the subscription's start (an hour boundary after it, minutes before its end), so the
suite gives the same figures at any time of day or month. Only what is tied to the wall clock
stays there: webhook signatures (their 5-minute tolerance) and the emulator's own drift, which
keeps it a few seconds ahead of the scenario's clock, never behind.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import MeterReport, Tier
from billing.tasks import apply_tier_switches, report_usage, report_usage_closed_periods
from metering.limiter import set_limiter
from metering.limiter.local import LocalLimiter
from metering.tasks import rollup_usage
from portal.models import Account

# What one successful call costs, as the API reference lists it (portal/api/endpoints/).
LOOKUP_UNITS = 1
COMPUTE_UNITS = 5
# The Pro tier of the scenarios (and of the contract run against Stripe): small enough to run
# past the included units with a few hundred calls, with a sub-cent overage price so that every
# metered line is rounded to the cent.
PRO_TIER = {
    "base_price_cents": 2900,
    "included_units": 100,
    "rate_limit_per_minute": 60,
    "overage_unit_price_cents": Decimal("0.35"),
}
# The Team tier of the scenarios (and of the contract): the switch scenario's other plan.
TEAM_TIER = {
    "base_price_cents": 9900,
    "included_units": 300,
    "rate_limit_per_minute": 120,
    "overage_unit_price_cents": Decimal("0.15"),
}
# The beat's hourly report runs this long after the hour (USAGE_REPORT_GRACE_SECONDS + 1 min).
HOURLY_RUN = timedelta(minutes=6)
# Stripe finalizes a period's invoice one hour after the period ends ("Configure an invoice
# finalization grace period", https://docs.stripe.com/billing/subscriptions/usage-based/
# configure-grace-period).
FINALIZATION_GRACE = timedelta(hours=1)


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class ScenarioClock:
    """The scenario's time: standing still until ``to`` moves it, only ever forward.

    ``move_stripe`` brings Stripe's clock to a moment (the emulator's ``advance_clock``, or a
    test clock's ``advance``). Install with ``install`` (Django and the limiter read it then).
    """

    def __init__(self, start: datetime, move_stripe: Callable[[datetime], None]):
        self.now = start.astimezone(UTC)
        self._move_stripe = move_stripe

    def to(self, moment: datetime) -> datetime:
        assert moment >= self.now, f"the clock only moves forward ({self.now} → {moment})"
        self.now = moment
        self._move_stripe(moment)
        return moment

    def advance(self, **delta: float) -> datetime:
        return self.to(self.now + timedelta(**delta))

    def catch_up(self, moment: datetime) -> None:
        """Move to ``moment`` if it is later (Stripe's clock ran ahead: a subscription
        created a few seconds past the scenario's now), without touching Stripe."""
        self.now = max(self.now, moment)

    def _limiter_us(self) -> int:
        return int(self.now.timestamp() * 1_000_000)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # The product reads the time only through django.utils.timezone.now (and the limiter's
        # clock), so this one patch moves the whole portal.
        monkeypatch.setattr(timezone, "now", lambda: self.now)
        # The in-process limiter on this clock: the minute a call is counted in and the rate
        # limit follow the scenario (Redis would answer with its own time).
        set_limiter(LocalLimiter(clock_us=self._limiter_us))


@dataclass
class Developer:
    """A developer's program calling the API with one key, counting what it was charged for:
    every 2xx costs the endpoint's units, nothing else does (401, 403, 400, 404, 429 are free)."""

    client: Client
    key: str
    # Which part of the period the calls fall in (a tier, before/after a switch).
    segment: str = "paid"
    admitted: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def _count(self, status: int, units: int) -> int:
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.admitted[self.segment] += units
        return status

    def lookup(self, times: int = 1, *, key: str | None = None, q: Any = 7) -> list[int]:
        auth = {"Authorization": f"Bearer {key or self.key}"}
        return [
            self._count(
                self.client.get("/v1/lookup", {"q": q}, headers=auth).status_code, LOOKUP_UNITS
            )
            for _ in range(times)
        ]

    def compute(self, times: int = 1) -> list[int]:
        body = json.dumps({"values": [3, 1, 4, 1, 5, 9, 2, 6], "percentiles": [50, 90]})
        auth = {"Authorization": f"Bearer {self.key}"}
        return [
            self._count(
                self.client.post(
                    "/v1/compute", body, content_type="application/json", headers=auth
                ).status_code,
                COMPUTE_UNITS,
            )
            for _ in range(times)
        ]

    def refused_calls(self) -> None:
        """Calls that must cost nothing: a wrong key (401), a bad argument (400, admitted by
        the limiter and given back) and an unknown endpoint (404)."""
        assert self.lookup(key="mdk_test_nope0000_" + "x" * 32) == [401]
        assert self.lookup(q=0) == [400]
        missing = self.client.get("/v1/nope", headers={"Authorization": f"Bearer {self.key}"})
        assert self._count(missing.status_code, LOOKUP_UNITS) == 404

    def burst(self, tier: Tier) -> None:
        """More lookups at one instant than the tier's burst allows: exactly the burst is
        admitted, the rest are refused with 429 and cost nothing. The bucket must be full (a
        minute or more since the last burst)."""
        allowed = tier.burst or tier.rate_limit_per_minute
        statuses = self.lookup(allowed + 5)
        assert statuses == [200] * allowed + [429] * 5, Counter(statuses)

    @property
    def total(self) -> int:
        return sum(self.admitted.values())


def busy_stretch(api: Developer, clock: ScenarioClock, tier: Tier, *, computes: int) -> int:
    """A few busy minutes on a paid tier: ``computes`` computes, then more lookups than the
    tier's burst allows, then calls refused for what they are. Returns the units admitted."""
    before = api.total
    assert api.compute(computes) == [200] * computes
    clock.advance(minutes=2)
    api.burst(tier)
    clock.advance(minutes=2)
    api.refused_calls()
    return api.total - before


class Beat:
    """The beat's billing jobs, run when a scenario says (Celery eager, fan-out on commit)."""

    def __init__(self, capture_on_commit: Callable[..., Any], deliver: Callable[[], Any]):
        self._capture = capture_on_commit
        self._deliver = deliver

    def rollup(self) -> None:
        rollup_usage.delay().get()

    def hourly_report(self, *, rollup: bool = True) -> None:
        """``report_usage`` (hourly); the rollup job (every minute) has run before it unless
        ``rollup`` is False (its worker is behind)."""
        if rollup:
            self.rollup()
        with self._capture(execute=True):
            report_usage.delay().get()
        self._deliver()

    def apply_tier_switches(self) -> None:
        """``apply_tier_switches`` (every minute), after the minute's rollup."""
        self.rollup()
        apply_tier_switches.delay().get()
        self._deliver()

    def period_close_report(self) -> None:
        """``report_usage_closed_periods`` (every five minutes), which rolls up first."""
        with self._capture(execute=True):
            report_usage_closed_periods.delay().get()
        self._deliver()


def cents(amount: Decimal) -> int:
    """Whole cents, rounded half up once per line, as the emulator documents (its README,
    "What it does": "rounded half up to whole cents once, on the line")."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def metered_cents(tier: Tier, units: int) -> int:
    """What the tier's graduated metered price bills for ``units`` in one segment: the
    included units at 0, each unit past them at the overage price ("Tiered pricing",
    https://docs.stripe.com/products-prices/pricing-models#tiered-pricing)."""
    return cents(max(0, units - tier.included_units) * Decimal(tier.overage_unit_price_cents))


@dataclass(frozen=True)
class InvoiceLine:
    price: str
    period_start: int
    period_end: int
    units: int
    cents: int


@dataclass(frozen=True)
class InvoiceFigures:
    """An invoice as Stripe issued it: its amounts and its lines."""

    id: str
    status: str
    billing_reason: str
    amount_due: int
    amount_paid: int
    total: int
    lines: list[InvoiceLine]

    def of(self, *tiers: Tier, metered: bool = True) -> list[InvoiceLine]:
        """The lines of these tiers' metered (or base) prices, in the order of their periods."""
        prices = {
            price.id
            for tier in tiers
            for price in [tier.stripe_metered_price if metered else tier.stripe_base_price]
            if price is not None
        }
        return sorted(
            (line for line in self.lines if line.price in prices),
            key=lambda line: (line.period_start, line.period_end),
        )

    def units(self, *tiers: Tier) -> int:
        return sum(line.units for line in self.of(*tiers))

    def cents(self, *tiers: Tier, metered: bool = True) -> int:
        return sum(line.cents for line in self.of(*tiers, metered=metered))


def invoice_figures(client: Any, invoice_id: str) -> InvoiceFigures:
    """Read an invoice and all its lines (paged) from Stripe through the SDK."""
    invoice = client.v1.invoices.retrieve(invoice_id)
    lines = []
    for line in client.v1.invoices.line_items.list(
        invoice_id, params={"limit": 100}
    ).auto_paging_iter():
        # Since API basil a line names its price under pricing.price_details.
        price = line.pricing.price_details.price
        lines.append(
            InvoiceLine(
                price=price if isinstance(price, str) else price.id,
                period_start=line.period.start,
                period_end=line.period.end,
                units=line.quantity or 0,
                cents=line.amount,
            )
        )
    return InvoiceFigures(
        id=invoice.id,
        status=invoice.status,
        billing_reason=invoice.billing_reason,
        amount_due=invoice.amount_due,
        amount_paid=invoice.amount_paid,
        total=invoice.total,
        lines=lines,
    )


def customer_invoices(client: Any, customer_id: str) -> list[InvoiceFigures]:
    """The customer's invoices, oldest first."""
    listing = client.v1.invoices.list(params={"customer": customer_id, "limit": 100})
    found = sorted(listing.auto_paging_iter(), key=lambda invoice: (invoice.created, invoice.id))
    return [invoice_figures(client, invoice.id) for invoice in found]


def period_invoice(
    invoices: list[InvoiceFigures], tiers: tuple[Tier, ...], ends: datetime
) -> InvoiceFigures | None:
    """The invoice whose metered lines of ``tiers`` bill the period ending at ``ends``, if one
    does yet (an invoice's own period fields are not its service period: "Use the line item
    period to get the service period for each price", The Invoice object,
    https://docs.stripe.com/api/invoices/object)."""
    matching = [
        invoice
        for invoice in invoices
        if any(line.period_end == int(ends.timestamp()) for line in invoice.of(*tiers))
    ]
    assert len(matching) <= 1, [(i.id, i.billing_reason, i.lines) for i in invoices]
    return matching[0] if matching else None


def metered_segments(
    invoice: InvoiceFigures, labels: dict[str, Tier]
) -> list[tuple[str, int, int]]:
    """(label, units, cents) of each stretch of the period a metered price billed, in the order
    of the stretches. Lines of one price and one period are added up: a graduated price's tiers
    may be listed as lines of their own."""
    tier_of = {
        tier.stripe_metered_price.id: label
        for label, tier in labels.items()
        if tier.stripe_metered_price is not None
    }
    # By where each stretch ends: the current price's line may span the whole period.
    totals: dict[tuple[int, int, str], list[int]] = {}
    for line in invoice.of(*labels.values()):
        units_and_cents = totals.setdefault(
            (line.period_end, line.period_start, line.price), [0, 0]
        )
        units_and_cents[0] += line.units
        units_and_cents[1] += line.cents
    return [
        (tier_of[price], units, cents) for (_, _, price), (units, cents) in sorted(totals.items())
    ]


class PortalSide:
    """What both drivers of the stories (``Scenario`` against the emulator, ``ContractScenario``
    against Stripe) do the same way, on the portal's side: the account, its plan switches."""

    account: Account
    browser: Client
    clock: ScenarioClock
    beat: Beat

    def refresh(self) -> Account:
        self.account.refresh_from_db()
        return self.account

    @property
    def customer_id(self) -> str:
        customer = self.refresh().stripe_customer
        assert customer is not None
        return customer.id

    def period_end(self) -> datetime:
        end = self.refresh().period_end
        assert end is not None
        return end

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
        rolled up (its grace) and reported."""
        self.clock.to(effective_at + timedelta(minutes=3))
        self.beat.apply_tier_switches()
        assert self.refresh().tier == tier

    def assert_reports_taken(self) -> None:
        """No report of the account waits or failed: each one was taken by Stripe (sent), or
        refused after it (rejected, by a meter error report)."""
        waiting = MeterReport.objects.filter(account=self.account).exclude(
            status__in=[MeterReport.Status.SENT, MeterReport.Status.REJECTED]
        )
        assert not waiting.exists(), list(waiting.values("identifier", "status", "last_error"))
