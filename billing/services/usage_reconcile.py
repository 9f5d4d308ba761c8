"""Usage to Stripe, checked: the daily reconcile of our report ledger against Stripe's meter event
summaries (``usage_reconcile``). The money audit of one account's period is
``billing.services.money_audit``; the summary reads both use are ``meter_summaries``.

**Compared by event time.** Stripe counts a meter event in the summary bucket that holds its
``timestamp``; a report's timestamp is its window's last second (``MeterReport.event_time``). So
our side is the reports *dated* in a span, whatever their windows.

**A period's span, exactly.** Summaries take ``start_time`` and ``end_time`` "aligned with minute
boundaries", and with ``value_grouping_window=hour`` "aligned with hour boundaries" (List billing
meter event summaries, https://docs.stripe.com/api/billing/meter-event-summary/list); a period
starts at any second. The span [first whole minute at or after the period's start, the same for
its end) (``metering.selectors.period_minutes``) holds every report of the period and none of its
neighbours': a report is dated inside its window, its window inside its period, and a window
that ends within the period's first, partial minute holds no whole minute of usage (the limiter
counts a period's usage from its first whole minute, ``metering.limiter.base.usage_minute``), so
it never carries units and is never written. A period still running is compared up to the last
whole hour that ended ``SUMMARY_SETTLE`` ago (see below).

**Covering span, hour by hour.** When the period's totals differ, the span is cut into slots:
the whole clock hours inside it (one call with ``value_grouping_window=hour``), and the partial
hours at its edges, each asked for on its own without grouping (minute alignment suffices
there). No Stripe bucket is therefore ever shared with a neighbouring period, and each of our
reports falls in exactly one slot, the one holding its timestamp.

**Re-sending what is missing, never twice.** A slot where Stripe has fewer units than our
reports dated in it, by exactly the units of one set of those reports (normally the slot's only
report, with Stripe showing 0), gets those reports re-sent *with their own identifiers*. That
cannot count twice: Stripe enforces an identifier's uniqueness "within a rolling period of at
least 24 hours" (Create a billing meter event,
https://docs.stripe.com/api/billing/meter-event/create), so a re-send within 24 hours of the
first send is refused as a duplicate if the first one landed; and a report last sent more than
``SUMMARY_SETTLE`` ago that the summary still lacks did not land — summaries are "eventually
consistent" (The Meter Event Summary object,
https://docs.stripe.com/api/billing/meter-event-summary/object), so reports sent more recently,
and reports still pending or failed (the reporter's to finish), make their slot *settling*:
neither re-sent nor flagged this run. As ``SUMMARY_SETTLE`` is far below 24 hours, one of the two
guards always holds. Stripe answering "duplicate" to a re-send while its summary lacks the units
means it has the identifier but refused the event in its asynchronous validation: that is
flagged, never re-sent under another identifier here. Never re-sent, only flagged: Stripe
having more than us (anywhere), a shortfall no set of the slot's reports explains, re-sends that
would exceed the period's total shortfall, and reports dated more than 35 days back (Stripe
refuses their timestamp).

**Invoices.** Stripe bills the usage dated in a period on that period's invoice while it is a
draft, and finalizes it about an hour after the period ends (Configure an invoice finalization
grace period, https://docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period).
Units re-sent after that reach Stripe's summary but no invoice: the discrepancy stays open
(``missed_invoice``) with the amount for an operator to bill by hand.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import combinations, pairwise

import stripe
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from billing.models import MeterReport, Tier, UsageDiscrepancy
from billing.services.meter_summaries import (
    FINALIZATION_GRACE,
    IN_FLIGHT,
    previous_and_current_period,
    summary_hours,
    summary_units,
    usage_meter_id,
)
from billing.services.reports import (
    STALE_MARGIN,
    STRIPE_ACCEPTS_PAST,
    SUBSCRIBED,
    MeterReportAlreadySent,
    usage_report_send,
)
from billing.stripe_api import stripe_client
from metering.selectors import period_minutes
from portal.audit import audit_record
from portal.models import Account

logger = logging.getLogger(__name__)

# How long after a send Stripe's summary is trusted to show it. Stripe publishes no figure for
# its aggregation delay; an hour is what it gives late usage before finalizing an invoice.
SUMMARY_SETTLE = timedelta(hours=1)
# The most reports of one slot whose subsets are tried against a shortfall (2**12 sums).
MAX_ATTRIBUTED_REPORTS = 12
# Reports whose units Stripe should have: sent, or stale (never confirmed, or too old to send).
OWED = (MeterReport.Status.SENT, MeterReport.Status.STALE)

_HOUR = timedelta(hours=1)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floored = _floor_hour(moment)
    return floored if floored == moment else floored + _HOUR


def _shown(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def period_bill_cents(tier: Tier, units: int) -> int:
    """What Stripe bills for ``units`` of a period on the tier's metered price, in whole cents:
    the included units at 0, each further unit at the overage price (0 on a ``block`` tier, as
    ``billing.stripe_specs.metered_tiers`` pushes it), rounded half up once for the line (Tiered
    pricing, https://docs.stripe.com/products-prices/pricing-models#tiered-pricing)."""
    return tier.usage_cents(units)


def _amount_cents(account: Account, ours: int, theirs: int) -> int:
    """Stripe's bill minus the bill our ledger supports. The tier is the one the account pays
    for now (``subscribed_tier``, else its tier): for a previous period with another tier the
    amount is an estimate, which the money audit's invoice line settles."""
    tier = account.subscribed_tier or account.tier
    return period_bill_cents(tier, theirs) - period_bill_cents(tier, ours)


@dataclass
class _Slot:
    """A piece of the compared span: a whole clock hour, or the partial hour at an edge."""

    start: datetime
    end: datetime
    reports: list[MeterReport] = field(default_factory=list)
    stripe: int = 0
    # A report in it was sent too recently for the summary to be trusted, or is still the
    # reporter's (pending, failed): its figures are not judged this run.
    settling: bool = False

    @property
    def ours(self) -> int:
        return sum(report.units for report in self.reports if report.status in OWED)

    def describe(self) -> str:
        return f"{_shown(self.start)} to {self.end:%H:%M}"


@dataclass
class UsageCheck:
    """What the reconcile found for one account and period."""

    class Outcome:
        AGREES = "agrees"
        # The span to compare is empty (the period began within the last hour or so).
        NOT_YET = "not yet"
        # The totals differ only in slots whose reports Stripe may not have aggregated yet.
        SETTLING = "settling"
        DISCREPANCY = "discrepancy"
        # Stripe could not be read; nothing was judged.
        ERROR = "error"

    account_id: int
    period_start: datetime
    period_end: datetime
    outcome: str
    ours_units: int = 0
    stripe_units: int = 0
    resent: list[str] = field(default_factory=list)
    discrepancy: UsageDiscrepancy | None = None
    note: str = ""

    def describe(self) -> str:
        head = f"account {self.account_id}, period from {_shown(self.period_start)}"
        text = f"{head}: {self.outcome} (ours {self.ours_units}, Stripe {self.stripe_units})"
        if self.resent:
            text += f"; re-sent {', '.join(self.resent)}"
        if self.discrepancy is not None:
            row = self.discrepancy
            state = "open" if row.is_open else "resolved"
            text += f"; discrepancy #{row.pk} {state}, {row.amount_cents:+d} cents"
        return f"{text}: {self.note}" if self.note else text


def _accounts_to_reconcile(account_ids: Iterable[int] | None, now: datetime) -> list[Account]:
    """Linked accounts with something to compare: a running subscription, a report in the last
    two periods' reach, or an open discrepancy to re-check."""
    recent_report = MeterReport.objects.filter(
        account=OuterRef("pk"), window_end__gte=now - 2 * STRIPE_ACCEPTS_PAST
    )
    open_discrepancy = UsageDiscrepancy.objects.filter(
        account=OuterRef("pk"), resolved__isnull=True
    )
    accounts = Account.objects.filter(stripe_customer__isnull=False).filter(
        Q(payment_status__in=SUBSCRIBED) | Exists(recent_report) | Exists(open_discrepancy)
    )
    if account_ids is not None:
        accounts = accounts.filter(pk__in=list(account_ids))
    return list(
        accounts.select_related("stripe_customer", "tier", "subscribed_tier", "owner").order_by(
            "pk"
        )
    )


def _periods_to_reconcile(account: Account, now: datetime) -> list[tuple[datetime, datetime]]:
    """The previous and the current period, the previous one only while it ended within the 35
    days Stripe accepts a meter event's timestamp for (earlier, nothing could be re-sent)."""
    periods = previous_and_current_period(account, now)
    return [period for period in periods if period[1] > now - STRIPE_ACCEPTS_PAST]


def _compared_span(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime]:
    first, last = period_minutes(start, end)
    return first, min(last, _floor_hour(now - SUMMARY_SETTLE))


def _reports_dated_in(account: Account, first: datetime, until: datetime) -> list[MeterReport]:
    candidates = MeterReport.objects.filter(
        account=account, window_end__gt=first, window_start__lt=until
    ).order_by("window_start", "sequence")
    return [report for report in candidates if first <= report.event_time < until]


def _last_send(report: MeterReport, now: datetime) -> datetime | None:
    """When the report last went to Stripe, at the latest. None: never sent.

    A stale report was tried until it went stale, which the reporter does without a call once
    its identifier is 23 hours old (``reports.IDENTIFIER_MEMORY``); the bound below is loose
    but safe."""
    if report.status == MeterReport.Status.SENT:
        return report.sent_at or report.created
    if not report.attempts:
        return None
    return min(now, report.created + timedelta(hours=24))


def _slots(
    first: datetime,
    until: datetime,
    reports: Sequence[MeterReport],
    now: datetime,
    fetch_hours: Callable[[datetime, datetime], dict[datetime, int]],
    fetch_span: Callable[[datetime, datetime], int],
) -> list[_Slot]:
    """The compared span cut at each clock hour, with Stripe's units and our reports per slot.
    ``fetch_hours`` reads Stripe per hour over whole hours, ``fetch_span`` one partial hour."""
    points = [first]
    hour = _ceil_hour(first)
    while hour < until:
        if hour > first:
            points.append(hour)
        hour += _HOUR
    points.append(until)
    slots = [_Slot(start, end) for start, end in pairwise(points)]
    whole = [slot.start for slot in slots if slot.end - slot.start == _HOUR]
    # One grouped call for the whole hours (contiguous: only the edges can be partial), one
    # ungrouped call per partial hour.
    hours = fetch_hours(whole[0], whole[-1] + _HOUR) if whole else {}
    for slot in slots:
        if slot.start in whole:
            slot.stripe = hours.get(slot.start, 0)
        else:
            slot.stripe = fetch_span(slot.start, slot.end)
    for report in reports:
        slot = next(s for s in slots if s.start <= report.event_time < s.end)
        slot.reports.append(report)
        sent = _last_send(report, now)
        if report.status in IN_FLIGHT or (sent is not None and sent > now - SUMMARY_SETTLE):
            slot.settling = True
    return slots


def _missing_reports(slot: _Slot) -> list[MeterReport] | None:
    """The one set of the slot's reports whose units make up Stripe's shortfall there; None
    when no set, or more than one, does (the shortfall cannot be attributed)."""
    gap = slot.ours - slot.stripe
    owed = [report for report in slot.reports if report.status in OWED]
    if gap <= 0 or len(owed) > MAX_ATTRIBUTED_REPORTS:
        return None
    found: list[tuple[MeterReport, ...]] = []
    for size in range(1, len(owed) + 1):
        for subset in combinations(owed, size):
            if sum(report.units for report in subset) == gap:
                found.append(subset)
                if len(found) > 1:
                    return None
    return list(found[0]) if found else None


@dataclass
class _Resend:
    report: MeterReport
    # Stripe took it as new: its units are on Stripe now.
    accepted: bool
    note: str


def _report_resend(report: MeterReport, now: datetime, client: stripe.StripeClient) -> _Resend:
    """Send a report Stripe's summary lacks once more, with its own identifier, through the
    reporter's own send (the operator path: it also sends a stale report)."""
    before = report.status
    if before == MeterReport.Status.SENT:
        # Taken out of "sent" first, so the reporter's send accepts it; only the run that
        # takes it sends it. Stale, because the hourly reporter leaves stale reports alone.
        taken = MeterReport.objects.filter(pk=report.pk, status=MeterReport.Status.SENT).update(
            status=MeterReport.Status.STALE,
            last_error="Stripe's meter event summary lacks it: the usage reconcile re-sends it.",
        )
        if not taken:
            return _Resend(report, False, f"{report.identifier} changed meanwhile; not re-sent")
    try:
        result = usage_report_send(report_id=report.pk, now=now, operator=True, client=client)
    except MeterReportAlreadySent:
        result = MeterReport.objects.get(pk=report.pk)
    audit_record(
        actor=None,
        action="meter_report.reconcile_resend",
        account=result.account,
        target=result.identifier,
        before={"status": before, "units": result.units},
        after={"status": result.status, "attempts": result.attempts},
    )
    if result.status != MeterReport.Status.SENT:
        return _Resend(
            result, False, f"{result.identifier} not re-sent: {result.last_error or 'busy'}"
        )
    if result.last_error:
        # The reporter notes why it took a refusal for success; a fresh acceptance leaves none.
        # Here the refusal was "duplicate identifier" while the summary lacks the units.
        return _Resend(
            result,
            False,
            f"Stripe already has the identifier {result.identifier} but not its "
            f"{result.units} units: it probably refused the event in its asynchronous "
            "validation (see its meter error reports); fix the cause and re-send it under a "
            "new identifier",
        )
    return _Resend(result, True, f"re-sent {result.identifier} ({result.units} units)")


def _discrepancy_record(
    account: Account,
    start: datetime,
    end: datetime,
    until: datetime,
    ours: int,
    theirs: int,
    now: datetime,
) -> UsageDiscrepancy:
    with transaction.atomic():
        row = (
            UsageDiscrepancy.objects.select_for_update()
            .filter(account=account, period_start=start, resolved__isnull=True)
            .first()
        )
        if row is None:
            row = UsageDiscrepancy(account=account, period_start=start, detected=now)
        row.period_end = end
        row.compared_until = until
        row.ours_units = ours
        row.stripe_units = theirs
        row.difference = theirs - ours
        row.amount_cents = _amount_cents(account, ours, theirs)
        row.checked = now
        row.save()
    return row


def _note(row: UsageDiscrepancy, now: datetime, text: str) -> None:
    """Put the run's finding first in the row's resolution, keeping earlier ones below."""
    row.resolution = f"{_shown(now)}: {text}\n{row.resolution}".strip()


def _period_reconcile(
    account: Account,
    start: datetime,
    end: datetime,
    now: datetime,
    client: stripe.StripeClient,
    meter_id: str,
) -> UsageCheck:
    assert account.stripe_customer is not None
    customer_id = account.stripe_customer.id
    check = UsageCheck(account.pk, start, end, UsageCheck.Outcome.NOT_YET)
    first, until = _compared_span(start, end, now)
    if until <= first:
        return check
    reports = _reports_dated_in(account, first, until)
    check.ours_units = sum(report.units for report in reports if report.status in OWED)
    check.stripe_units = summary_units(client, meter_id, customer_id, first, until)
    open_row = UsageDiscrepancy.objects.filter(
        account=account, period_start=start, resolved__isnull=True
    ).first()
    if check.ours_units == check.stripe_units:
        check.outcome = UsageCheck.Outcome.AGREES
        if open_row is not None and not open_row.missed_invoice:
            _note(open_row, now, f"Stripe agrees: {check.ours_units} units on both sides.")
            open_row.resolved = open_row.checked = now
            open_row.save(update_fields=["resolution", "resolved", "checked"])
        check.discrepancy = open_row
        return check

    slots = _slots(
        first,
        until,
        reports,
        now,
        lambda a, b: summary_hours(client, meter_id, customer_id, a, b),
        lambda a, b: summary_units(client, meter_id, customer_id, a, b),
    )
    judged = [slot for slot in slots if not slot.settling]
    if all(slot.ours == slot.stripe for slot in judged):
        check.outcome = UsageCheck.Outcome.SETTLING
        check.note = "the difference lies in hours whose reports Stripe may not show yet"
        return check

    check.outcome = UsageCheck.Outcome.DISCREPANCY
    row = _discrepancy_record(account, start, end, until, check.ours_units, check.stripe_units, now)
    check.discrepancy = row
    findings: list[str] = []
    missing: list[MeterReport] = []
    for slot in judged:
        if slot.stripe > slot.ours:
            findings.append(
                f"{slot.describe()}: Stripe has {slot.stripe - slot.ours} units more than our "
                "reports; nothing sent (cancel the extra events or credit the customer)"
            )
        elif slot.stripe < slot.ours:
            found = _missing_reports(slot)
            if found is None:
                findings.append(
                    f"{slot.describe()}: Stripe lacks {slot.ours - slot.stripe} units that no "
                    "set of our reports accounts for; nothing sent"
                )
            else:
                missing.extend(found)
    shortfall = check.ours_units - check.stripe_units
    oldest_allowed = now - STRIPE_ACCEPTS_PAST + STALE_MARGIN
    too_old = [report for report in missing if report.event_time < oldest_allowed]
    missing = [report for report in missing if report not in too_old]
    if too_old:
        findings.append(
            f"{', '.join(r.identifier for r in too_old)}: older than Stripe accepts (35 days); "
            "bill by hand"
        )
    if missing and sum(report.units for report in missing) > shortfall:
        findings.append(
            f"{', '.join(r.identifier for r in missing)} look missing, but re-sending "
            f"{sum(r.units for r in missing)} units would exceed the period's shortfall of "
            f"{max(shortfall, 0)}; nothing sent"
        )
        missing = []
    resent = [_report_resend(report, now, client) for report in missing]
    check.resent = [item.report.identifier for item in resent if item.accepted]
    findings.extend(item.note for item in resent)
    accepted_units = sum(item.report.units for item in resent if item.accepted)
    settled = (
        accepted_units == shortfall
        and all(item.accepted for item in resent)
        and not any(slot.settling for slot in slots)
    )
    if accepted_units and end + FINALIZATION_GRACE <= now:
        row.missed_invoice = True
        findings.append(
            "the period's invoice was finalized before these units reached Stripe: bill "
            f"{_amount_cents(account, check.ours_units - accepted_units, check.ours_units)} cents "
            "by hand, then mark this settled"
        )
    elif settled:
        row.resolved = now
    _note(row, now, "; ".join(findings) or "no slot explains the difference")
    row.save(update_fields=["resolution", "resolved", "missed_invoice"])
    check.note = row.resolution.splitlines()[0]
    return check


def usage_reconcile(
    *, account_ids: Iterable[int] | None = None, now: datetime | None = None
) -> list[UsageCheck]:
    """Compare, per linked account and period (the current one and the previous one, within 35
    days), our reports with Stripe's meter event summaries; re-send what Stripe lost, record a
    ``UsageDiscrepancy`` for the rest, and close discrepancies Stripe agrees with again.

    Safe to run twice, or concurrently: a re-send takes its report out of "sent" with a
    conditional update first, and carries its own identifier (see the module's docstring).
    """
    now = now or timezone.now()
    client = stripe_client()
    meter_id = usage_meter_id(client=client)
    if meter_id is None:
        logger.info("Usage reconcile: Stripe has no meter for our events; nothing to compare")
        return []
    checks: list[UsageCheck] = []
    for account in _accounts_to_reconcile(account_ids, now):
        for start, end in _periods_to_reconcile(account, now):
            try:
                check = _period_reconcile(account, start, end, now, client, meter_id)
            except stripe.StripeError as error:
                # One customer's failure must not keep the others from being checked.
                logger.warning("Usage reconcile: account %s: %s", account.pk, error)
                check = UsageCheck(
                    account.pk, start, end, UsageCheck.Outcome.ERROR, note=str(error)[:500]
                )
            if check.outcome == UsageCheck.Outcome.DISCREPANCY:
                logger.warning("Usage reconcile: %s", check.describe())
            checks.append(check)
    return checks
