"""The beat schedule: every job exists as a registered task and runs at its cadence, and each
has a management command an operator can run by hand."""

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.core.management import get_commands

from config import celery_app

JOBS = {
    # task name: (seconds between runs, or a crontab, and the command running the same job)
    "metering.tasks.rollup_usage": (60, "rollup_usage"),
    "portal.tasks.flush_api_key_last_used": (60, "flush_last_used"),
    "billing.tasks.report_usage": ("hourly", "report_usage"),
    "billing.tasks.report_usage_closed_periods": (300, "report_usage"),
    "metering.tasks.send_usage_alerts": (300, "send_usage_alerts"),
    "billing.tasks.account_enforce_grace_task": ("hourly", "enforce_billing_grace"),
    "billing.tasks.subscriptions_reconcile_task": ("daily", "reconcile_subscriptions"),
    "billing.tasks.usage_reconcile_task": ("daily", "reconcile_usage"),
    "billing.tasks.apply_tier_switches": (60, "apply_tier_switches"),
    "billing.tasks.send_budget_alerts": (300, "send_budget_alerts"),
}


def _schedule(task: str):
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == task]
    return entry["schedule"]


@pytest.mark.django_db  # importing the task modules runs Celery's Django fixup (it checks the DB)
def test_every_scheduled_job_is_a_registered_task():
    celery_app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert scheduled == set(JOBS)
    assert scheduled <= set(celery_app.tasks)


@pytest.mark.parametrize(("task", "cadence"), [(t, c) for t, (c, _) in JOBS.items()])
def test_each_job_runs_at_its_cadence(task, cadence):
    schedule = _schedule(task)
    runs = {"hourly": 24, "daily": 1}.get(cadence) or 86400 // cadence

    if isinstance(schedule, crontab):
        assert len(schedule.hour) * len(schedule.minute) == runs
    else:
        assert 86400 / schedule == runs


def test_the_hourly_report_waits_for_the_grace_after_the_hour():
    schedule = _schedule("billing.tasks.report_usage")

    assert schedule.minute == {settings.USAGE_REPORT_GRACE_SECONDS // 60 + 1}


@pytest.mark.parametrize("command", sorted({c for _, c in JOBS.values()}))
def test_each_job_has_a_management_command(command):
    assert command in get_commands()
