"""Celery tasks for billing's jobs: thin wrappers around billing.services, taking ids,
idempotent.

The beat schedule that runs them (``report_usage`` hourly, ``report_usage_closed_periods``
every few minutes, ``apply_tier_switches`` every minute, ``send_budget_alerts`` every five
minutes, ``account_enforce_grace_task`` hourly, ``subscriptions_reconcile_task`` and
``usage_reconcile_task`` daily) lives with the other jobs in ``config/settings.py``. The email
tasks the services queue live in billing.emails.
"""

import logging
import random

import stripe
from celery import shared_task
from django.db import transaction

from billing.models import BudgetAlert, MeterReport, TierSwitch
from billing.services.budgets import budget_alerts_send
from billing.services.checkout import account_stripe_customer_email_sync
from billing.services.grace import account_enforce_grace
from billing.services.reconcile import invoices_reconcile, subscriptions_reconcile
from billing.services.reports import usage_report_account, usage_report_due_accounts
from billing.services.switch import tier_switches_apply
from billing.services.usage_reconcile import usage_reconcile
from metering.services import usage_rollup
from portal.models import Account

logger = logging.getLogger(__name__)


@shared_task
def subscriptions_reconcile_task() -> int:
    """Repair accounts (and invoices) whose webhooks were lost; returns how many changed."""
    repaired = subscriptions_reconcile()
    invoices_reconcile()
    return len(repaired)


@shared_task
def account_enforce_grace_task() -> int:
    """Move accounts whose payment grace period is over to the default tier."""
    return len(account_enforce_grace())


# --- Usage reporting (billing/services/reports/) -----------------------------------------


@shared_task(acks_late=True)
def report_usage() -> int:
    """Hourly: one ``report_usage_account`` task per account with a closed window to report or
    a report to (re-)send, so one slow customer holds up no one else. Returns the count."""
    account_ids = usage_report_due_accounts()
    _report_usage_fan_out(account_ids)
    return len(account_ids)


@shared_task(acks_late=True)
def report_usage_closed_periods() -> int:
    """Every few minutes: the final window of each period that has just ended, so its last
    usage reaches the period's invoice before Stripe finalizes it. The limiter's closed minutes
    are rolled up first, so a rollup job running behind cannot leave a period's last minutes
    out of its final window."""
    usage_rollup()
    account_ids = usage_report_due_accounts(period_close_only=True)
    _report_usage_fan_out(account_ids)
    return len(account_ids)


@shared_task(bind=True, acks_late=True, max_retries=6)
def report_usage_account(self, account_id: int) -> int:
    """Report one account's closed windows and send what it has unsent; returns how many
    reports Stripe has now. Safe to run twice, or after a worker died half-way."""
    reports = usage_report_account(account_id=account_id)
    if any(report.status == MeterReport.Status.PENDING for report in reports):
        # Left pending: another worker had this customer's one call in flight. Try again
        # shortly rather than wait for the next hourly run.
        raise self.retry(countdown=5 + random.uniform(0, 5))
    return sum(1 for report in reports if report.status == MeterReport.Status.SENT)


def _report_usage_fan_out(account_ids: list[int]) -> None:
    transaction.on_commit(lambda: [report_usage_account.delay(pk) for pk in account_ids])


@shared_task(acks_late=True)
def apply_tier_switches() -> int:
    """Every minute: move each subscription whose tier switch is due, once the usage before the
    switch is with Stripe (billing/services/switch.py). Returns how many were applied."""
    switches = tier_switches_apply()
    return sum(1 for switch in switches if switch.status == TierSwitch.Status.APPLIED)


# --- Usage reconcile (billing/services/usage_reconcile.py) ---------------------------------


@shared_task(acks_late=True)
def usage_reconcile_task() -> int:
    """Daily: compare each linked account's reports with Stripe's meter event summaries, re-send
    what Stripe lost, flag the rest. Returns how many periods have an open discrepancy."""
    checks = usage_reconcile()
    return sum(1 for check in checks if check.discrepancy and check.discrepancy.is_open)


# --- Budgets (billing/services/budgets.py) ---------------------------------------------------


@shared_task(acks_late=True)
def send_budget_alerts() -> int:
    """Every five minutes: email each budget amount a developer's usage charges have reached,
    once per billing period. Returns how many emails went out."""
    return sum(1 for alert in budget_alerts_send() if alert.status == BudgetAlert.Status.SENT)


@shared_task(bind=True, acks_late=True, max_retries=8)
def stripe_customer_email_sync(self, account_id: int) -> None:
    """Give the Stripe customer the new primary owner's email (billing.receivers queues it);
    retried with backoff while Stripe cannot be reached. Sending it twice changes nothing."""
    try:
        account_stripe_customer_email_sync(account=Account.objects.get(pk=account_id))
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        raise self.retry(exc=error, countdown=min(600, 10 * 2**self.request.retries)) from None
