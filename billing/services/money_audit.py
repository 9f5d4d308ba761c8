"""The money audit of one account's period, from the units the limiter admitted to the invoice's
line (``money_audit``), each figure compared with the one above it.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import stripe
from django.db.models import Min, QuerySet, Sum
from django.utils import timezone
from djstripe.models import Subscription

from billing.models import MeterReport, UsageDiscrepancy
from billing.services.meter_summaries import (
    FINALIZATION_GRACE,
    IN_FLIGHT,
    epoch,
    previous_and_current_period,
    summary_units,
    usage_meter_id,
)
from billing.services.reports import SUBSCRIBED
from billing.stripe_api import as_dict, stripe_client
from metering.models import UsageRollup
from metering.selectors import period_minutes, period_units
from portal.models import Account

# The rollup moves a minute into the database about three minutes after it ends.
ROLLUP_SETTLE = timedelta(minutes=10)
# The reporter sends a period's last window minutes after it ends, other windows hourly.
REPORT_SETTLE = timedelta(hours=1)


class AuditState:
    AGREES = "agrees"
    # Differs from the figure above for a reason that clears by itself (named in the note).
    EXPECTED = "expected"
    DIFFERS = "differs"
    # No figure to compare (Stripe did not answer).
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class AuditRow:
    label: str
    # None: no figure (not invoiced yet, no Stripe customer, Stripe did not answer).
    units: int | None
    state: str
    note: str = ""
    # A breakdown of the figure (reports by status).
    detail: str = ""


@dataclass(frozen=True)
class MoneyAudit:
    account: Account
    period_start: datetime
    period_end: datetime
    is_open: bool
    rows: list[AuditRow]
    discrepancies: list[UsageDiscrepancy]

    @property
    def all_agree(self) -> bool:
        return all(row.state == AuditState.AGREES for row in self.rows)


def money_audit_periods(
    account: Account, now: datetime | None = None
) -> list[tuple[datetime, datetime]]:
    """The periods the audit offers: the current one, then the previous one."""
    previous, current = previous_and_current_period(account, now or timezone.now())
    return [current, previous]


def _rolled_up_row(
    admitted: int, rolled: int, is_open: bool, end: datetime, now: datetime
) -> AuditRow:
    label = "Units rolled up (usage rollups)"
    live = admitted - rolled
    if live == 0:
        return AuditRow(label, rolled, AuditState.AGREES)
    if live > 0 and (is_open or now < end + ROLLUP_SETTLE):
        return AuditRow(
            label,
            rolled,
            AuditState.EXPECTED,
            f"{live:,} units are still in the limiter's live counters; the rollup moves each "
            "minute into the database about three minutes after it ends.",
        )
    return AuditRow(
        label,
        rolled,
        AuditState.DIFFERS,
        f"{abs(live):,} units {'are still in the live counters' if live > 0 else 'fewer admitted'}"
        f" {_age(now - end)} after the period ended: is the rollup job running?",
    )


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} h" if hours else f"{int(delta.total_seconds() // 60)} min"


def _billable_from(account: Account) -> datetime | None:
    """When the account's usage began to be billed: the earlier of its first report's window
    and its current subscription's start (dj-stripe's copy). None: never (a free account)."""
    moments = []
    first = account.meter_reports.aggregate(first=Min("window_start"))["first"]
    if first is not None:
        moments.append(first)
    if account.stripe_subscription_id:
        started = (
            Subscription.objects.filter(id=account.stripe_subscription_id)
            .values_list("stripe_data__start_date", flat=True)
            .first()
        )
        if started:
            moments.append(datetime.fromtimestamp(int(started), UTC))
        elif account.payment_status in SUBSCRIBED:
            # No copy yet: the account's period follows the subscription's.
            moments.append(account.period_start)
    return min(moments, default=None)


def _reported_row(
    rollups: QuerySet[UsageRollup],
    rolled: int,
    reports: list[MeterReport],
    billable_from: datetime | None,
    is_open: bool,
    end: datetime,
    now: datetime,
) -> AuditRow:
    label = "Units reported (meter reports)"
    by_status: dict[str, int] = {}
    for report in reports:
        by_status[report.status] = by_status.get(report.status, 0) + report.units
    total = sum(by_status.values())
    detail = " · ".join(
        f"{name.lower()} {by_status[value]:,}"
        for value, name in MeterReport.Status.choices
        if by_status.get(value)
    )
    if total == rolled:
        return AuditRow(label, total, AuditState.AGREES, detail=detail)
    if total > rolled:
        return AuditRow(
            label,
            total,
            AuditState.DIFFERS,
            f"the reports carry {total - rolled:,} units more than were rolled up.",
            detail,
        )
    unclaimed = rollups.filter(meter_report__isnull=True)
    reasons: list[str] = []
    surprising = False
    recent = is_open or now < end + REPORT_SETTLE
    if billable_from is None:
        before, after, between = _units(unclaimed), 0, 0
    else:
        before = _units(unclaimed.filter(minute__lt=billable_from))
        billed = unclaimed.filter(minute__gte=billable_from)
        cursor = max((report.window_end for report in reports), default=billable_from)
        after = _units(billed.filter(minute__gte=cursor))
        between = _units(billed.filter(minute__lt=cursor))
    if before:
        reasons.append(
            f"{before:,} units before the subscription started (free-tier usage, never billed)"
            if billable_from is not None
            else f"{before:,} units of an account that never subscribed (never billed)"
        )
    if after:
        surprising |= not recent
        reasons.append(
            f"{after:,} units not reported yet (windows go out hourly, 5 minutes after the hour; "
            "a period's last window minutes after it ends)"
            + ("" if recent else " — over an hour after the period ended: is the reporter running?")
        )
    if between:
        surprising |= not recent
        reasons.append(
            f"{between:,} units rolled up after their window was reported (the next report, or a "
            "late one once the period has ended, carries them)"
        )
    state = AuditState.DIFFERS if surprising or not reasons else AuditState.EXPECTED
    return AuditRow(label, total, state, "; ".join(reasons) + ".", detail)


def _units(rows: QuerySet[UsageRollup]) -> int:
    return rows.aggregate(units=Sum("units"))["units"] or 0


def _stripe_row(
    reports: list[MeterReport],
    stripe_units: int | None,
    error: str,
    discrepancies: list[UsageDiscrepancy],
) -> AuditRow:
    label = "On Stripe (meter event summary)"
    if stripe_units is None:
        return AuditRow(label, None, AuditState.UNKNOWN, error)
    total = sum(report.units for report in reports)
    if total == stripe_units:
        return AuditRow(label, stripe_units, AuditState.AGREES)
    by_status: dict[str, int] = {}
    for report in reports:
        by_status[report.status] = by_status.get(report.status, 0) + report.units
    reasons = []
    unsent = sum(by_status.get(status, 0) for status in IN_FLIGHT)
    if unsent:
        reasons.append(
            f"{unsent:,} units pending or failed: the reporter sends them (same identifiers)"
        )
    others = {
        status: units
        for status, units in by_status.items()
        if status not in IN_FLIGHT and status != MeterReport.Status.SENT
    }
    for status, units in others.items():
        reasons.append(f"{units:,} units {MeterReport.Status(status).label.lower()}")
    off = stripe_units - by_status.get(MeterReport.Status.SENT, 0)
    if off:
        reasons.append(
            f"Stripe has {abs(off):,} units {'more' if off > 0 else 'fewer'} than our sent "
            "reports; the daily usage reconcile re-sends what is missing and flags the rest"
        )
    if discrepancies:
        reasons.append(f"{len(discrepancies)} open discrepancy(ies) below")
    state = AuditState.EXPECTED if not off and not others else AuditState.DIFFERS
    return AuditRow(label, stripe_units, state, "; ".join(reasons) + ".")


def _metered_lines(
    client: stripe.StripeClient, customer_id: str, start: datetime, end: datetime
) -> list[tuple[dict, dict]]:
    """(invoice, line) for each metered line billing usage of [start, end): the lines of
    a subscription's metered price, whose ``period`` is the subscription period they bill (The
    Invoice Line Item object, https://docs.stripe.com/api/invoice-line-item/object), and the
    usage invoice items a price switch leaves (flexible billing mode)."""
    begin, finish = epoch(start), epoch(end)
    prices: dict[str, bool] = {}
    found = []
    invoices = client.v1.invoices.list(params={"customer": customer_id, "limit": 100})
    for invoice in invoices.data:
        if invoice.created < begin or invoice.status == "void":
            continue
        lines = client.v1.invoices.line_items.list(invoice.id, params={"limit": 100})
        for line in lines.auto_paging_iter():
            data = as_dict(line)
            period = data.get("period") or {}
            # Overlap, not containment: an account whose paid period Stripe started on a whole
            # minute begins one second after it (billing.services.subscriptions), so the line
            # billing that period starts a second before ``begin``. The neighbouring periods'
            # lines only touch [begin, finish) at an end and do not overlap it.
            if not (period.get("start", 0) < finish and period.get("end", 0) > begin):
                continue
            price_id = ((data.get("pricing") or {}).get("price_details") or {}).get("price")
            if not price_id:
                continue
            if price_id not in prices:
                price = as_dict(client.v1.prices.retrieve(price_id))
                prices[price_id] = (price.get("recurring") or {}).get("usage_type") == "metered"
            if prices[price_id]:
                found.append((as_dict(invoice), data))
    return found


def _invoice_row(
    client: stripe.StripeClient,
    customer_id: str | None,
    stripe_units: int | None,
    billable_from: datetime | None,
    is_open: bool,
    start: datetime,
    end: datetime,
    now: datetime,
) -> AuditRow:
    label = "Invoiced (metered line quantity)"
    if customer_id is None:
        return AuditRow(label, None, AuditState.EXPECTED, "No Stripe customer: nothing is billed.")
    if is_open:
        return AuditRow(
            label,
            None,
            AuditState.EXPECTED,
            "Not invoiced yet: the period is running. Stripe drafts its invoice when it ends and "
            "finalizes it about an hour later, with the usage it has by then.",
        )
    try:
        found = _metered_lines(client, customer_id, start, end)
    except stripe.StripeError as error:
        return AuditRow(label, None, AuditState.UNKNOWN, f"Stripe did not answer: {error}")
    if not found:
        # Compared in whole seconds, Stripe's resolution.
        if billable_from is None or epoch(end) <= epoch(billable_from):
            return AuditRow(
                label, None, AuditState.EXPECTED, "No subscription in this period: not invoiced."
            )
        recent = now < end + FINALIZATION_GRACE
        return AuditRow(
            label,
            None,
            AuditState.EXPECTED if recent else AuditState.DIFFERS,
            "No invoice bills this period's usage yet.",
        )
    quantity = sum(int(line.get("quantity") or 0) for _, line in found)
    drafts = sorted({invoice["id"] for invoice, _ in found if invoice["status"] == "draft"})
    if drafts:
        return AuditRow(
            label,
            quantity,
            AuditState.EXPECTED,
            f"Not invoiced yet: {', '.join(drafts)} is a draft; Stripe recounts its usage when it "
            "finalizes it (about an hour after the period ends).",
        )
    invoices = ", ".join(sorted({invoice["id"] for invoice, _ in found}))
    if stripe_units is None:
        return AuditRow(label, quantity, AuditState.UNKNOWN, f"On {invoices}.")
    if quantity == stripe_units:
        return AuditRow(label, quantity, AuditState.AGREES, f"On {invoices}.")
    return AuditRow(
        label,
        quantity,
        AuditState.DIFFERS,
        f"{invoices} bills {quantity:,} units, Stripe's summary has {stripe_units:,}: usage that "
        "reached Stripe after the invoice was finalized is on no invoice; bill the difference by "
        "hand.",
    )


def money_audit(
    *, account: Account, period_start: datetime, now: datetime | None = None
) -> MoneyAudit:
    """The chain of figures for one account and period, each compared with the one above it:
    units admitted (rolled-up rows plus the limiter's live counters), units rolled up, units
    reported (by report status), Stripe's meter event summary, and the invoice's metered line.

    Reads Stripe: the meter summary, and once the period has ended the customer's newest
    invoices, their lines and their prices. If Stripe does not answer, its figures are unknown
    and the rest is still shown.
    """
    now = now or timezone.now()
    start, end = account.current_period(period_start)
    is_open = end > now
    first, last = period_minutes(start, end)
    admitted = period_units(account.pk, start, end)
    rollups = UsageRollup.objects.filter(account=account, minute__gte=first, minute__lt=last)
    rolled = _units(rollups)
    reports = list(
        MeterReport.objects.filter(account=account, window_start__gte=start, window_end__lte=end)
    )
    discrepancies = list(
        UsageDiscrepancy.objects.filter(account=account, period_start=start, resolved__isnull=True)
    )
    billable_from = _billable_from(account)
    customer_id = account.stripe_customer.id if account.stripe_customer else None
    client = stripe_client()
    stripe_units: int | None = None
    error = ""
    if customer_id is None:
        error = "No Stripe customer: nothing is reported."
    else:
        try:
            meter_id = usage_meter_id(client=client)
            # Reports are dated an hour back at the latest; Stripe gets no end in the future.
            until = min(last, now.replace(second=0, microsecond=0))
            stripe_units = (
                summary_units(client, meter_id, customer_id, first, until) if meter_id else 0
            )
        except stripe.StripeError as exc:
            error = f"Stripe did not answer: {exc}"
    rows = [
        AuditRow(
            "Units admitted (limiter)",
            admitted,
            AuditState.AGREES,
            "The starting figure: rolled-up minutes plus the limiter's live counters.",
        ),
        _rolled_up_row(admitted, rolled, is_open, end, now),
        _reported_row(rollups, rolled, reports, billable_from, is_open, end, now),
    ]
    if customer_id is None:
        rows.append(AuditRow("On Stripe (meter event summary)", None, AuditState.EXPECTED, error))
    else:
        rows.append(_stripe_row(reports, stripe_units, error, discrepancies))
    rows.append(
        _invoice_row(client, customer_id, stripe_units, billable_from, is_open, start, end, now)
    )
    return MoneyAudit(account, start, end, is_open, rows, discrepancies)
