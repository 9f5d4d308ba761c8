"""Billing's Prometheus gauges, read from the database when ``/metrics`` is scraped
(``BillingCollector``, listed in ``settings.METRICS_COLLECTORS``).

Each query is bounded by an index, so a scrape every few seconds costs little:

- report lag: the oldest unsent report by ``meter_report_pending_idx`` (status, window_start),
  and per subscribed account (``account_payment_idx``) its oldest unclaimed billable minute by
  ``usage_unreported_account_idx`` (account, minute where not reported), one LIMIT 1 each;
- reports needing an operator: counted within ``meter_report_pending_idx``;
- webhook failures of the last 24 hours: dj-stripe's trigger table has no index on ``created``,
  but its ids grow with time, so the newest row older than 24 hours is found by walking the
  primary key down from the top (as many rows as arrived in 24 hours) and the count is a
  primary-key range;
- unprocessed thin events: the table holds one row per meter error notification Stripe sent,
  which stays small.
"""

import logging
import math
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.utils import timezone
from djstripe.models import WebhookEventTrigger
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from billing.models import MeterReport, StripeThinEvent
from billing.services.reports import SUBSCRIBED
from metering.models import UsageRollup
from portal.models import Account

logger = logging.getLogger(__name__)

# Reports the runs send (again) by themselves.
UNSENT = (MeterReport.Status.PENDING, MeterReport.Status.FAILED)
# Reports that need someone: failing sends, and the states only an operator clears.
NEEDING_ATTENTION = (
    MeterReport.Status.FAILED,
    MeterReport.Status.STALE,
    MeterReport.Status.REJECTED,
    MeterReport.Status.SUSPECT,
)
WEBHOOK_WINDOW = timedelta(hours=24)


def _due(window_end: datetime) -> datetime:
    """When the reporter takes a window up: USAGE_REPORT_GRACE_SECONDS after it closes."""
    return window_end + timedelta(seconds=settings.USAGE_REPORT_GRACE_SECONDS)


def usage_report_lag_seconds(*, now: datetime) -> float:
    """Seconds since the oldest billable usage that has not reached Stripe became due; 0 when
    all of it has. Two places hold such usage:

    - a report written but not sent (pending, or failed and retried by every run);
    - minutes of a subscribed account's current period that no report has claimed although their
      hourly window closed: the report job is not running, or fails before it writes.

    The hourly job runs a minute after a window is due, so a few minutes is normal."""
    oldest_unsent = (
        MeterReport.objects.filter(status__in=UNSENT)
        .order_by("window_start")
        .values_list("window_end", flat=True)
        .first()
    )
    closed_before = now - timedelta(seconds=settings.USAGE_REPORT_GRACE_SECONDS)
    due_before = closed_before.replace(minute=0, second=0, microsecond=0)
    oldest_minute = UsageRollup.objects.filter(
        account=OuterRef("pk"),
        meter_report__isnull=True,
        units__gt=0,
        minute__gte=OuterRef("period_start"),
        minute__lt=due_before,
    ).order_by("minute")
    oldest_unclaimed = (
        Account.objects.filter(payment_status__in=SUBSCRIBED, stripe_customer__isnull=False)
        .annotate(oldest=Subquery(oldest_minute.values("minute")[:1]))
        .aggregate(first=Min("oldest"))["first"]
    )
    dues = []
    if oldest_unsent is not None:
        dues.append(_due(oldest_unsent))
    if oldest_unclaimed is not None:
        # Its window is the clock hour it falls in.
        hour = oldest_unclaimed.replace(minute=0, second=0, microsecond=0)
        dues.append(_due(hour + timedelta(hours=1)))
    if not dues:
        return 0.0
    return max(0.0, (now - min(dues)).total_seconds())


def usage_reports_needing_attention() -> dict[str, int]:
    """Reports by state, for every state that needs someone (0 included)."""
    counts = dict.fromkeys(map(str, NEEDING_ATTENTION), 0)
    rows = (
        MeterReport.objects.filter(status__in=NEEDING_ATTENTION)
        .values("status")
        .annotate(reports=Count("pk"))
        .order_by()
    )
    for row in rows:
        counts[row["status"]] = row["reports"]
    return counts


def stripe_webhook_failures(*, now: datetime) -> dict[str, int]:
    """Webhook deliveries of the last 24 hours that dj-stripe stored and did not apply:
    ``invalid`` (the signature did not verify) and ``error`` (a receiver raised: Stripe
    delivers it again)."""
    since = now - WEBHOOK_WINDOW
    boundary = (
        WebhookEventTrigger.objects.filter(created__lt=since)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    return WebhookEventTrigger.objects.filter(pk__gt=boundary or 0, created__gte=since).aggregate(
        invalid=Count("pk", filter=Q(valid=False)),
        error=Count("pk", filter=Q(valid=True) & ~Q(exception="")),
    )


def stripe_thin_events_unprocessed() -> int:
    """Thin events (meter error reports) recorded but not applied: fetching the full event from
    Stripe failed, and Stripe has not delivered it again successfully yet."""
    return StripeThinEvent.objects.filter(processed__isnull=True).count()


class BillingCollector:
    """The gauges above. If the database cannot be read, each is NaN and a warning logged: the
    scrape still answers, and the hot path's counters still go out."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        lag: float
        thin_events: float
        attention: dict[str, float]
        webhooks: dict[str, float]
        try:
            lag = usage_report_lag_seconds(now=now)
            attention = dict(usage_reports_needing_attention())
            webhooks = dict(stripe_webhook_failures(now=now))
            thin_events = stripe_thin_events_unprocessed()
        except Exception:  # a scrape must answer; the database's own errors surface elsewhere
            logger.warning(
                "Billing gauges not measured: the database could not be read", exc_info=True
            )
            lag, thin_events = math.nan, math.nan
            attention = dict.fromkeys(map(str, NEEDING_ATTENTION), math.nan)
            webhooks = dict.fromkeys(("invalid", "error"), math.nan)

        yield GaugeMetricFamily(
            "meterdesk_usage_report_lag_seconds",
            "Seconds since the oldest billable usage not yet sent to Stripe became due "
            "(an unsent report, or a closed window no report has claimed); 0: none.",
            value=lag,
        )
        reports = GaugeMetricFamily(
            "meterdesk_usage_reports_failed",
            "Usage reports that need someone, by state: failed (retried by every run), stale "
            "(too old for Stripe), rejected (refused by Stripe), suspect (possibly rejected).",
            labels=["status"],
        )
        for status, count in attention.items():
            reports.add_metric([status], count)
        yield reports
        failures = GaugeMetricFamily(
            "meterdesk_stripe_webhook_failures",
            "Stripe webhook deliveries of the last 24 hours not applied: invalid signature, or "
            "an error while applying (Stripe delivers those again).",
            labels=["kind"],
        )
        for kind, count in webhooks.items():
            failures.add_metric([kind], count)
        yield failures
        yield GaugeMetricFamily(
            "meterdesk_stripe_thin_events_unprocessed",
            "Stripe thin events (meter error reports) recorded but not applied yet.",
            value=thin_events,
        )
