"""Celery tasks for billing: thin wrappers around billing.services, taking ids, idempotent.

The beat schedule that runs ``subscriptions_reconcile_task`` (daily) and
``account_enforce_grace_task`` (hourly) lives with the other jobs.
"""

import logging
import random

from celery import shared_task
from django.db import transaction

from billing import emails, reporting, services
from billing.models import MeterReport
from portal.models import Account

logger = logging.getLogger(__name__)


@shared_task
def subscriptions_reconcile_task() -> int:
    """Repair accounts (and invoices) whose webhooks were lost; returns how many changed."""
    repaired = services.subscriptions_reconcile()
    services.invoices_reconcile()
    return len(repaired)


@shared_task
def account_enforce_grace_task() -> int:
    """Move accounts whose payment grace period is over to the default tier."""
    return len(services.account_enforce_grace())


@shared_task
def payment_failed_email_send(account_id: int) -> None:
    account = (
        Account.objects.select_related("owner", "tier", "subscribed_tier")
        .filter(pk=account_id)
        .first()
    )
    # The email is about a state, so it is only sent while the state holds.
    if account is not None and account.grace_until is not None:
        emails.payment_failed_email(account)


@shared_task
def grace_expired_email_send(account_id: int) -> None:
    account = (
        Account.objects.select_related("owner", "tier", "subscribed_tier")
        .filter(pk=account_id)
        .first()
    )
    if account is not None and account.grace_until is not None:
        emails.grace_expired_email(account)


# --- Usage reporting (billing/reporting.py) ------------------------------------------------


@shared_task(acks_late=True)
def report_usage() -> int:
    """Hourly: one ``report_usage_account`` task per account with a closed window to report or
    a report to (re-)send, so one slow customer holds up no one else. Returns the count."""
    account_ids = reporting.usage_report_due_accounts()
    _report_usage_fan_out(account_ids)
    return len(account_ids)


@shared_task(acks_late=True)
def report_usage_closed_periods() -> int:
    """Every few minutes: the final window of each period that has just ended, so its last
    usage reaches the period's invoice before Stripe finalizes it."""
    account_ids = reporting.usage_report_due_accounts(period_close_only=True)
    _report_usage_fan_out(account_ids)
    return len(account_ids)


@shared_task(bind=True, acks_late=True, max_retries=6)
def report_usage_account(self, account_id: int) -> int:
    """Report one account's closed windows and send what it has unsent; returns how many
    reports Stripe has now. Safe to run twice, or after a worker died half-way."""
    reports = reporting.usage_report_account(account_id=account_id)
    if any(report.status == MeterReport.Status.PENDING for report in reports):
        # Left pending: another worker had this customer's one call in flight. Try again
        # shortly rather than wait for the next hourly run.
        raise self.retry(countdown=5 + random.uniform(0, 5))
    return sum(1 for report in reports if report.status == MeterReport.Status.SENT)


def _report_usage_fan_out(account_ids: list[int]) -> None:
    transaction.on_commit(lambda: [report_usage_account.delay(pk) for pk in account_ids])
