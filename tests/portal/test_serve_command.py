"""``manage.py serve`` (``make run``): its in-process beat can run every scheduled job.

Checked in a fresh interpreter, as ``make run`` starts one: in this test process the suite has
already imported every task module, which would hide a job whose task was never registered
(beat would publish it to the in-memory broker, where nothing ever runs it)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import stripe
from django.conf import settings

from portal.management.commands.serve import Command

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json
import django

django.setup()
from django.conf import settings
from config import celery_app

scheduled = sorted(entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values())
before = [name for name in scheduled if name in celery_app.tasks]
from portal.management.commands.serve import embedded_beat

beat = embedded_beat()
print(json.dumps({
    "scheduled": scheduled,
    "registered_before": before,
    "registered_after": [name for name in scheduled if name in celery_app.tasks],
    "eager": celery_app.conf.task_always_eager,
    "beat_thread": type(beat).__name__,
}))
"""


def test_every_scheduled_job_runs_in_the_embedded_process(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "CELERY_TASK_ALWAYS_EAGER", "DATABASE_URL")
    }
    env.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path))
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(probe.stdout.strip().splitlines()[-1])

    scheduled = sorted(entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values())
    assert result["scheduled"] == scheduled
    assert "metering.tasks.rollup_usage" in scheduled
    # Nothing imports the task modules on the way to serving; embedded_beat() must.
    assert result["registered_before"] != scheduled
    assert result["registered_after"] == scheduled
    # Registered and eager: beat runs each job in this process, where the counters live.
    assert result["eager"] is True
    assert result["beat_thread"] == "_Threaded"


def test_the_embedded_emulator_keeps_its_customers_across_a_restart(tmp_path, settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.STRIPE_EMULATOR_PORT = probe.getsockname()[1]
    settings.STRIPE_EMULATOR_STATE_FILE = str(tmp_path / "stripe-emulator.json")
    emulator = Command()._start_emulator()
    client = stripe.StripeClient("sk_test_serve", base_addresses={"api": emulator.url})
    customer = client.v1.customers.create(params={"email": "dev@example.com"})
    emulator.stop()

    restarted = Command()._start_emulator()
    try:
        again = stripe.StripeClient("sk_test_serve", base_addresses={"api": restarted.url})
        assert again.v1.customers.retrieve(customer.id).email == "dev@example.com"
    finally:
        restarted.stop()
