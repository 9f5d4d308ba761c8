"""Sending one report to Stripe: one call in flight per customer, retries with back-off, an
idempotency key per try, and the outcome marked on the report (a retry carries the same
identifier, which Stripe counts once: see the package's docstring)."""

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone
from stripe.params.billing import MeterEventCreateParams

from billing.models import MeterReport
from billing.services.reports.errors import MeterReportAlreadySent
from billing.services.reports.ledger import _too_old_for_stripe
from billing.services.reports.reidentify import NEEDS_NEW_IDENTIFIER, _reidentify
from billing.stripe_api import stripe_client

logger = logging.getLogger(__name__)

# Stripe remembers an identifier for "at least 24 hours". A report that was tried (so may have
# landed) and is still unconfirmed after this long is not re-sent blindly: past the duplicate
# window a re-send could count twice, so it goes to an operator instead.
IDENTIFIER_MEMORY = timedelta(hours=23)
# HTTP calls per report in one run before it is left failed for the next run.
MAX_TRIES = 5
BACKOFF_CAP_SECONDS = 8.0
# A Retry-After longer than this ends the run's tries; the next run tries again.
RETRY_AFTER_CAP_SECONDS = 30.0
# The PostgreSQL advisory lock namespace for "a meter event call in flight for this account".
_LOCK_SPACE = 0x4D44

_local_slots: dict[int, threading.Lock] = {}
_local_slots_guard = threading.Lock()


@contextmanager
def _customer_slot(account_id: int) -> Iterator[bool]:
    """Whether this process may call Stripe for the account now: Stripe allows one meter event
    call in flight per customer, so concurrent runs take turns (the loser leaves the report
    alone; its Celery task tries again a few seconds later). PostgreSQL: a session advisory
    lock, no transaction held across the call, released by the server if the worker dies.
    SQLite (the embedded mode, one process by design): a lock in this process."""
    if connection.vendor == "postgresql":
        key = [_LOCK_SPACE, account_id % 2**31]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
            acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        return
    with _local_slots_guard:
        lock = _local_slots.setdefault(account_id, threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def usage_report_send(
    *,
    report_id: int,
    now: datetime | None = None,
    operator: bool = False,
    client: stripe.StripeClient | None = None,
) -> MeterReport:
    """Send one report to Stripe, retrying transient failures with back-off, and record the
    outcome: sent, failed (the next run, or an operator, tries again) or stale.

    ``operator``: an operator's explicit re-send from the admin. It also re-sends a report that
    was stale because its identifier may have left Stripe's duplicate window (the operator has
    checked Stripe's meter summary), and one Stripe rejected (or may have) after accepting it:
    under a new identifier, to the account's current customer (``_reidentify``). Never one
    Stripe has, nor one too old for Stripe. Raises ``MeterReportAlreadySent`` for a sent
    report and ``MeterReportRefused`` for a rejected one that cannot go when ``operator`` is
    set.
    """
    now = now or timezone.now()
    report = MeterReport.objects.get(pk=report_id)
    with _customer_slot(report.account_id) as acquired:
        report.refresh_from_db()
        if report.status == MeterReport.Status.SENT:
            if operator:
                raise MeterReportAlreadySent(f"{report.identifier} was sent {report.sent_at}")
            return report
        if not acquired:
            logger.info("Usage report %s: another call for this customer is in flight", report)
            return report
        if report.status in NEEDS_NEW_IDENTIFIER:
            if not operator:
                return report
            report = _reidentify(report, now)
            if report.status != MeterReport.Status.PENDING:
                return report  # changed meanwhile: nothing to send
        if _too_old_for_stripe(report, now):
            return _mark(
                report,
                MeterReport.Status.STALE,
                "Window older than Stripe accepts (35 days); settle it by hand.",
            )
        if report.status == MeterReport.Status.STALE and not operator:
            return report
        if not operator and report.attempts and report.identifier_since < now - IDENTIFIER_MEMORY:
            return _mark(
                report,
                MeterReport.Status.STALE,
                "Not confirmed within Stripe's 24-hour duplicate window. Check the customer's "
                "meter event summary for this window; re-send it from the admin only if missing.",
            )
        return _send(report, client or stripe_client())


def _send(report: MeterReport, client: stripe.StripeClient) -> MeterReport:
    params: MeterEventCreateParams = {
        "event_name": report.event_name,
        "identifier": report.identifier,
        "payload": {"stripe_customer_id": report.stripe_customer_id, "value": str(report.units)},
        "timestamp": int(report.event_time.timestamp()),
    }
    error = ""
    tried_before = report.attempts
    for attempt in range(1, MAX_TRIES + 1):
        # Counted before the call: from here on the event may have reached Stripe.
        MeterReport.objects.filter(pk=report.pk).update(attempts=F("attempts") + 1)
        try:
            client.v1.billing.meter_events.create(
                params=params,
                options={"idempotency_key": _idempotency_key(report, tried_before + attempt)},
            )
        except stripe.InvalidRequestError as exc:
            if _is_duplicate(exc):
                # Stripe keeps the first event with this identifier: it is billed, once.
                return _mark_sent(report, "Stripe already had this identifier (an earlier try).")
            if exc.code == "timestamp_too_far_in_past":
                return _mark(report, MeterReport.Status.STALE, _describe(exc))
            return _mark(report, MeterReport.Status.FAILED, _describe(exc))
        except (stripe.RateLimitError, stripe.APIConnectionError, stripe.APIError) as exc:
            error = _describe(exc)
            delay = _retry_delay(exc, attempt)
            logger.warning("Usage report %s, try %s: %s", report.identifier, attempt, error)
            if attempt == MAX_TRIES or delay is None:
                break
            time.sleep(delay)
        except stripe.StripeError as exc:
            # Authentication, permission: nothing a retry in this run would change.
            return _mark(report, MeterReport.Status.FAILED, _describe(exc))
        else:
            return _mark_sent(report, "")
    return _mark(report, MeterReport.Status.FAILED, error)


def _idempotency_key(report: MeterReport, try_number: int) -> str:
    """A key of its own for each try. Stripe saves the first answer given to an idempotency key
    once the request began executing, a 500 included, and replays it for 24 hours ("Idempotent
    requests", https://docs.stripe.com/api/idempotent_requests): a retry under the same key
    would get that 500 back forever. What keeps a retry from counting twice is the meter event's
    ``identifier``, which Stripe deduplicates on its own; within one try the SDK's network
    retries reuse this key."""
    return f"{report.identifier}:try-{try_number}"


def _is_duplicate(exc: stripe.InvalidRequestError) -> bool:
    # Stripe answers a reused identifier with a 400 "An event already exists with identifier
    # ..." (code duplicate_meter_event); the message is checked too, the code is not promised.
    message = (exc.user_message or str(exc) or "").lower()
    return exc.code == "duplicate_meter_event" or (
        exc.param == "identifier" and "already exists" in message
    )


def _retry_delay(exc: stripe.StripeError, attempt: int) -> float | None:
    """Seconds to wait before the next try: Stripe's Retry-After (plus jitter) for a 429,
    else exponential back-off with full jitter. None: longer than this run should wait."""
    if isinstance(exc, stripe.RateLimitError):
        retry_after = _header(exc, "Retry-After")
        if retry_after is not None:
            if retry_after > RETRY_AFTER_CAP_SECONDS:
                return None
            return retry_after + random.uniform(0, max(0.05, retry_after * 0.2))
    base = settings.USAGE_REPORT_BACKOFF_MS / 1000
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, base * 2 ** (attempt - 1)))


def _header(exc: stripe.StripeError, name: str) -> float | None:
    headers = exc.headers or {}
    raw = headers.get(name) or headers.get(name.lower())
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _describe(exc: stripe.StripeError) -> str:
    status = f"HTTP {exc.http_status} " if exc.http_status else ""
    code = f"{exc.code}: " if exc.code else ""
    return f"{type(exc).__name__}: {status}{code}{exc.user_message or exc}"[:2000]


def _mark_sent(report: MeterReport, note: str) -> MeterReport:
    # Stripe's asynchronous verdict on this identifier (rejected, from a thin event that came
    # in while this call was out) outranks the call's answer.
    MeterReport.objects.filter(pk=report.pk).exclude(status=MeterReport.Status.REJECTED).update(
        status=MeterReport.Status.SENT, sent_at=timezone.now(), last_error=note
    )
    report.refresh_from_db()
    return report


def _mark(report: MeterReport, status: str, error: str) -> MeterReport:
    # A sent report stays sent: another worker's confirmation is never overwritten; nor is
    # Stripe's rejection (a failed re-send of the same identifier would be "duplicate", then
    # marked sent).
    MeterReport.objects.filter(pk=report.pk).exclude(
        status__in=[MeterReport.Status.SENT, MeterReport.Status.REJECTED]
    ).update(status=status, last_error=error)
    report.refresh_from_db()
    if report.status not in (MeterReport.Status.SENT, MeterReport.Status.REJECTED):
        logger.error("Usage report %s is %s: %s", report.identifier, report.status, error)
    return report
