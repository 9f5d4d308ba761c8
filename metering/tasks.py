"""Celery tasks of the metering app: thin wrappers around its services."""

from celery import shared_task
from django.db import transaction

from metering import alerts
from metering.models import UsageAlert
from metering.services import usage_rollup


@shared_task(acks_late=True)
def rollup_usage() -> None:
    """Every minute: the limiter's closed minutes into ``UsageRollup`` rows (idempotent)."""
    usage_rollup()


@shared_task(acks_late=True)
def send_usage_alerts() -> int:
    """Every five minutes: one ``send_usage_alerts_account`` task per account whose usage may
    have crossed a threshold, or with an alert to retry. Returns the count."""
    account_ids = alerts.usage_alert_due_accounts()
    transaction.on_commit(lambda: [send_usage_alerts_account.delay(pk) for pk in account_ids])
    return len(account_ids)


@shared_task(acks_late=True)
def send_usage_alerts_account(account_id: int) -> int:
    """Claim and email one account's crossed thresholds; returns how many emails went out.
    Safe to repeat: a threshold is claimed once per period, a sent alert never sent again."""
    handled = alerts.usage_alerts_check(account_id=account_id)
    return sum(1 for alert in handled if alert.status == UsageAlert.Status.SENT)
