"""The reporting jobs on Celery: eagerly in the embedded mode, and on a real `celery -A config
worker` over Redis and PostgreSQL (CI's second pass) that is SIGKILLed in the middle of a
report and started again. Either way Stripe's total equals the rolled-up total, exactly."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import MeterReport
from billing.tasks import report_usage, report_usage_closed_periods
from config import celery_app
from metering.models import UsageRollup
from portal.models import Account
from portal.periods import add_months
from tests.services import postgres_required, redis_url
from tests.usage_reporting import (
    hour_floor,
    reported_units,
    stripe_subscription_started,
    stripe_total,
)

METER_EVENTS = "/v1/billing/meter_events"


@pytest.mark.django_db
def test_the_beat_tasks_report_every_unit_once_in_the_embedded_mode(
    reporting_stripe, subscribed_account, add_usage, django_capture_on_commit_callbacks
):
    accounts = [subscribed_account() for _ in range(3)]
    for number, account in enumerate(accounts, start=1):
        add_usage(account, timezone.now() - timedelta(hours=2), number * 100)

    with django_capture_on_commit_callbacks(execute=True):
        queued = report_usage.delay().get()
    with django_capture_on_commit_callbacks(execute=True):
        again = report_usage.delay().get()

    assert (queued, again) == (3, 0)
    for number, account in enumerate(accounts, start=1):
        assert stripe_total(reporting_stripe, account) == number * 100
    assert reporting_stripe.request_count(METER_EVENTS) == 3


@pytest.mark.django_db
def test_the_period_close_task_reports_only_periods_that_just_ended(
    reporting_stripe, subscribed_account, add_usage, django_capture_on_commit_callbacks
):
    now = timezone.now()
    ended, running = subscribed_account(), subscribed_account()
    end = now - timedelta(minutes=7)
    Account.objects.filter(pk=ended.pk).update(period_start=end, period_end=add_months(end, 1))
    stripe_subscription_started(ended, end - timedelta(days=40))
    add_usage(ended, end - timedelta(minutes=2), 5)
    add_usage(running, now - timedelta(hours=3), 9)

    with django_capture_on_commit_callbacks(execute=True):
        queued = report_usage_closed_periods.delay().get()

    assert queued == 1
    assert stripe_total(reporting_stripe, ended) == 5
    assert stripe_total(reporting_stripe, running) == 0  # its hour waits for the hourly run


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_report_and_restarted_bills_every_unit_once(
    reporting_stripe, subscribed_account, add_usage, tmp_path
):
    postgres_required()
    broker = _broker_url(redis_url())
    accounts = [subscribed_account() for _ in range(6)]
    # Every hour of the usage closed and past the report's grace, whenever in the hour the test
    # runs (it failed in an hour's first five minutes, when the last hour was not yet due).
    base = hour_floor(timezone.now() - timedelta(minutes=10)) - timedelta(hours=3)
    for number, account in enumerate(accounts, start=1):
        for minute in range(0, 150, 10):
            add_usage(account, base + timedelta(minutes=minute), number)
    # Slow answers that Stripe still records: the kill lands while a call is in flight, after
    # Stripe took the event and before the worker could write that down.
    reporting_stripe.inject_fault(METER_EVENTS, status=None, delay=1.0, apply=True, fraction=1)
    queue = f"mdk-test-{uuid.uuid4().hex[:8]}"
    worker = _Worker(tmp_path, queue, redis_url(), broker, reporting_stripe.url)

    worker.start()
    try:
        _queue(report_usage, queue, broker)
        _wait(lambda: reporting_stripe.request_count(METER_EVENTS) >= 2, worker, "a first call")
        worker.kill()
        reporting_stripe.clear_faults()
        unsent = MeterReport.objects.exclude(status=MeterReport.Status.SENT).count()

        worker.start()
        _queue(report_usage, queue, broker)  # the next beat tick
        _wait(
            lambda: (
                not UsageRollup.objects.filter(meter_report__isnull=True).exists()
                and not MeterReport.objects.exclude(status=MeterReport.Status.SENT).exists()
            ),
            worker,
            "every report sent",
        )
    finally:
        worker.kill()

    assert unsent > 0, "the kill came too late to interrupt a report"
    for number, account in enumerate(accounts, start=1):
        expected = number * len(range(0, 150, 10))
        assert stripe_total(reporting_stripe, account) == reported_units(account) == expected
    assert MeterReport.objects.count() == len(accounts)


# The worker's broker is a Redis database of its own: the suite's cache.clear() (a FLUSHDB of
# REDIS_URL's database, around every test) must not wipe the queue the worker reads.
WORKER_BROKER_DB = 14


def _broker_url(redis: str) -> str:
    return urlunparse(urlparse(redis)._replace(path=f"/{WORKER_BROKER_DB}"))


def _queue(task, queue: str, broker: str) -> None:
    with celery_app.connection_for_write(broker) as connection:
        task.apply_async(queue=queue, connection=connection)


class _Worker:
    """`celery -A config worker` in its own process group, on this test's database and queue."""

    def __init__(
        self, tmp_path: Path, queue: str, redis: str, broker: str, stripe_base: str
    ) -> None:
        db = settings.DATABASES["default"]
        self.env = {
            **os.environ,
            "DATABASE_URL": (
                f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}"
                f"/{db['NAME']}"
            ),
            "REDIS_URL": redis,
            "CELERY_BROKER_URL": broker,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "STRIPE_API_BASE": stripe_base,
            "STRIPE_TIMEOUT_SECONDS": "5",
            "USAGE_REPORT_BACKOFF_MS": "50",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        self.queue = queue
        self.log = tmp_path / "worker.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--loglevel=INFO",
                    "--pool=prefork",
                    "--concurrency=2",
                    f"--hostname={self.queue}-{self.starts}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the pool's children too
            self.process.wait(timeout=10)
        self.process = None

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


def _wait(condition, worker: _Worker, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker.process is not None and worker.process.poll() is not None:
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.tail()}")
        time.sleep(0.1)
    state = list(MeterReport.objects.values_list("identifier", "status", "attempts", "last_error"))
    unclaimed = UsageRollup.objects.filter(meter_report__isnull=True).count()
    pytest.fail(
        f"timed out waiting for {what}; reports {state}, {unclaimed} rollups unclaimed; "
        f"worker log:\n{worker.tail()}"
    )
