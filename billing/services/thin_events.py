"""Stripe's thin events (API v2): verified, recorded once, applied. Today these are the meter
error reports: meter events Stripe accepted (the create call answered 200), then refused in its
asynchronous validation, and so never billed.

"Stripe processes meter events asynchronously" (Record usage for billing with the API,
https://docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api): an event for an
unknown or deleted customer, or for a meter that is gone, is refused after the call, and Stripe
says so with ``v1.billing.meter.error_report_triggered`` ("Occurs when a Meter has invalid async
usage events") or ``v1.billing.meter.no_meter_found`` (Types of events v2,
https://docs.stripe.com/api/v2/core/events/event-types). These are thin events: the delivery
names the event only, and the receiver fetches it (``GET /v2/core/events/{id}``) for its
``data``: ``reason.error_types[{code, error_count, sample_errors[{error_message,
request.identifier}]}]`` and the ``validation_start``/``validation_end`` of the window it sums
up (The Event object v2, https://docs.stripe.com/api/v2/core/events/object).

**The rule.** A report whose identifier a sample names is *rejected* (confirmed: Stripe refused
that very event, so re-sending it under a new identifier cannot count twice). Stripe gives
*samples*: when a type's ``error_count`` exceeds its samples, the other refused events are not
named, and may be any of our reports that reached Stripe in the window. Every report marked sent
within [validation_start - 1 min, validation_end + 1 min] (``sent_at`` is our clock, taken after
Stripe's answer) that no sample names becomes *suspect*: not counted as billed, and left to an
operator, who reads the customer's meter event summary and either confirms it or re-sends it.
Nothing is re-sent by itself: a blind re-send of a report Stripe did bill would bill it twice.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from stripe.v2.core import EventNotification

from billing.models import MeterReport, StripeEventDestination, StripeThinEvent, Tier
from billing.services.deliveries import (
    DeliveryRefused,
    delivery_json_read,
    delivery_signature_verify,
    fields_missing,
)
from billing.stripe_api import as_dict, stripe_client

logger = logging.getLogger(__name__)

# What every thin event notification has ("Event destinations", thin events,
# https://docs.stripe.com/event-destinations#thin-events; "The Event object v2",
# https://docs.stripe.com/api/v2/core/events/object), and the SDK reads without checking.
NOTIFICATION_FIELDS: tuple[tuple[str, type], ...] = (("id", str), ("type", str), ("created", str))
METER_ERROR_EVENTS = (
    "v1.billing.meter.error_report_triggered",
    "v1.billing.meter.no_meter_found",
)
# Our clock against Stripe's, and sent_at is written after Stripe answered.
WINDOW_SLACK = timedelta(minutes=1)


@dataclass
class ErrorReportOutcome:
    rejected: list[str] = field(default_factory=list)
    suspect: list[str] = field(default_factory=list)
    # Sampled identifiers no current report carries (another integration's, or one already
    # re-sent under a new identifier).
    not_ours: list[str] = field(default_factory=list)
    # Refused events Stripe did not name.
    unnamed: int = 0

    def describe(self) -> str:
        parts = [f"{len(self.rejected)} report(s) rejected: {', '.join(self.rejected) or '—'}"]
        if self.unnamed:
            parts.append(
                f"{self.unnamed} refused event(s) not named; {len(self.suspect)} report(s) sent "
                f"in the window marked suspect: {', '.join(self.suspect) or '—'}"
            )
        if self.not_ours:
            parts.append(f"not current reports: {', '.join(self.not_ours)}")
        return "; ".join(parts)


def thin_event_verify(*, body: bytes, signature: str | None) -> EventNotification:
    """The notification in a delivery signed with the secret of one of our event destinations,
    dated within the tolerance of now either way (billing.services.deliveries). Raises
    ``DeliveryRefused``: not from Stripe, dated outside the window, or signed but not a thin
    event notification; nothing is stored then."""
    secrets = StripeEventDestination.objects.values_list("secret", flat=True)
    delivery_signature_verify(body=body, signature=signature, secrets=secrets)
    parsed = delivery_json_read(body=body)
    missing = fields_missing(parsed, NOTIFICATION_FIELDS)
    if parsed.get("object") != "v2.core.event":
        missing.append("object (v2.core.event)")
    if missing:
        raise DeliveryRefused(
            "Signed, but not a thin event notification as Stripe sends them: no valid "
            f"{', '.join(missing)}. Nothing was stored or applied."
        )
    try:
        return EventNotification.from_json(parsed, stripe_client())
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # A field the SDK reads (reason, context) in a shape it cannot read.
        raise DeliveryRefused(
            f"Signed, but the SDK cannot read this notification ({error!r}). Nothing was stored."
        ) from None


def thin_event_process(*, notification: EventNotification) -> StripeThinEvent:
    """Record the event once and apply it once. A second delivery of an applied event changes
    nothing. Raises ``stripe.StripeError`` when the event cannot be fetched: the row stays
    unprocessed and Stripe's next delivery tries again."""
    row, _ = StripeThinEvent.objects.get_or_create(
        stripe_id=notification.id, defaults={"type": notification.type}
    )
    if row.processed is not None:
        return row
    data: dict[str, Any] = {}
    meter_id = None
    if notification.type in METER_ERROR_EVENTS:
        # Outside any transaction: no row lock is held across a Stripe call.
        event = as_dict(notification.fetch_event())
        data = event.get("data") or {}
        meter_id = (event.get("related_object") or {}).get("id")
    with transaction.atomic():
        row = StripeThinEvent.objects.select_for_update().get(pk=row.pk)
        if row.processed is not None:
            return row  # a concurrent delivery of the same event applied it
        if notification.type in METER_ERROR_EVENTS:
            outcome = meter_error_report_apply(event_id=row.stripe_id, data=data, meter_id=meter_id)
            row.outcome = outcome.describe()
        else:
            row.outcome = "Nothing to do for this type."
        row.processed = timezone.now()
        row.save(update_fields=["processed", "outcome"])
    return row


def meter_error_report_apply(
    *, event_id: str, data: dict[str, Any], meter_id: str | None
) -> ErrorReportOutcome:
    """Mark the reports a meter error report names rejected, and, if it names fewer refused
    events than it counts, the other reports sent in its window suspect (see the module's
    rule). Runs in the caller's transaction."""
    outcome = ErrorReportOutcome()
    now = timezone.now()
    reason = data.get("reason") or {}
    named: set[str] = set()
    for error_type in reason.get("error_types") or []:
        samples = error_type.get("sample_errors") or []
        outcome.unnamed += max(0, int(error_type.get("error_count") or 0) - len(samples))
        for sample in samples:
            identifier = (sample.get("request") or {}).get("identifier")
            if not identifier:
                outcome.unnamed += 1
                continue
            named.add(identifier)
            rejected = _reject(
                identifier,
                code=error_type.get("code") or "unknown",
                message=sample.get("error_message") or "",
                event_id=event_id,
                now=now,
            )
            (outcome.rejected if rejected else outcome.not_ours).append(identifier)
    if outcome.unnamed and _is_our_meter(meter_id):
        outcome.suspect = _suspect(data, named, event_id, outcome.unnamed)
    if outcome.rejected or outcome.suspect:
        logger.error("Stripe meter error report %s: %s", event_id, outcome.describe())
    return outcome


def _reject(identifier: str, *, code: str, message: str, event_id: str, now: datetime) -> bool:
    """Whether a report carries this identifier (it is rejected now, or was already)."""
    report = MeterReport.objects.select_for_update().filter(identifier=identifier).first()
    if report is None:
        return False
    if report.status == MeterReport.Status.REJECTED:
        return True
    report.rejections = [
        *report.rejections,
        {
            "identifier": identifier,
            "customer": report.stripe_customer_id,
            "code": code,
            "message": message,
            "event": event_id,
            "at": now.isoformat(),
        },
    ]
    report.status = MeterReport.Status.REJECTED
    report.last_error = (
        f"Stripe refused it after accepting it: {code}: {message} (customer "
        f"{report.stripe_customer_id}, event {event_id}). Never billed. Fix the cause (e.g. give "
        "the account a Stripe customer that exists), then re-send it: it goes under a new "
        "identifier to the account's current customer."
    )
    report.save(update_fields=["rejections", "status", "last_error"])
    return True


def _is_our_meter(meter_id: str | None) -> bool:
    """None (``no_meter_found`` names no meter): an event name without a meter may be ours."""
    return meter_id is None or Tier.objects.filter(stripe_meter_id=meter_id).exists()


def _suspect(data: dict[str, Any], named: set[str], event_id: str, unnamed: int) -> list[str]:
    try:
        start = datetime.fromisoformat(data["validation_start"]) - WINDOW_SLACK
        end = datetime.fromisoformat(data["validation_end"]) + WINDOW_SLACK
    except (KeyError, TypeError, ValueError):
        logger.error("Meter error report %s has no readable window", event_id)
        return []
    reports = list(
        MeterReport.objects.select_for_update()
        .filter(
            status=MeterReport.Status.SENT,
            event_name=settings.STRIPE_METER_EVENT_NAME,
            sent_at__gte=start,
            sent_at__lte=end,
        )
        .exclude(identifier__in=named)
    )
    for report in reports:
        report.status = MeterReport.Status.SUSPECT
        report.last_error = (
            f"Possibly refused by Stripe: it refused {unnamed} event(s) it did not name between "
            f"{data['validation_start']} and {data['validation_end']} (event {event_id}), and "
            f"this one reached it then. Read customer {report.stripe_customer_id}'s meter event "
            f"summary at {report.event_time:%Y-%m-%d %H:%M} UTC: if its {report.units} units "
            "are there, mark it received; if not, re-send it."
        )
        report.save(update_fields=["status", "last_error"])
    return [report.identifier for report in reports]
