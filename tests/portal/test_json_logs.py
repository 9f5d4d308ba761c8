"""``LOG_FORMAT=json``: every log line is one JSON object (time, level, logger, message, the
traceback as text, and the request's method, path, status and id when the record has a
request). The default stays the plain one-line format, and a typo stops the start-up.

The settings are read in a fresh interpreter, as the web and worker processes read them."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory

from portal.observability.logs import JsonLogFormatter
from tests.fresh_process import run_with_settings

LOG_SOME_LINES = """
import logging, django
django.setup()
log = logging.getLogger("billing.services.reports")
log.info("Reported %d units", 42)
try:
    raise ValueError("bad window")
except ValueError:
    log.exception("Report failed:\\nsecond line")
"""


def run_logging(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return run_with_settings(LOG_SOME_LINES, tmp_path, drop=lambda key: key == "LOG_FORMAT", **env)


def test_json_logs_are_one_object_per_line(tmp_path):
    result = run_logging(tmp_path, LOG_FORMAT="json")

    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    entries = [json.loads(line) for line in lines]  # every line parses on its own
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("INFO", "billing.services.reports", "Reported 42 units"),
        ("ERROR", "billing.services.reports", "Report failed:\nsecond line"),
    ]
    assert entries[0]["time"].endswith("Z") and "exc_info" not in entries[0]
    assert entries[1]["exc_info"].startswith("Traceback (most recent call last):")
    assert entries[1]["exc_info"].endswith("ValueError: bad window")


def test_plain_logs_stay_the_default(tmp_path):
    result = run_logging(tmp_path)

    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.endswith(" INFO billing.services.reports: Reported 42 units")
    assert "Traceback (most recent call last):" in result.stderr


def test_an_unknown_format_stops_the_start_up(tmp_path):
    result = run_logging(tmp_path, LOG_FORMAT="xml")

    assert result.returncode != 0
    assert "LOG_FORMAT='xml' must be one of plain, json" in result.stderr


def test_a_request_record_names_the_request():
    request = RequestFactory().get("/v1/lookup?q=5", HTTP_X_REQUEST_ID="req-7f3a")
    try:
        raise RuntimeError("the product fell over")
    except RuntimeError:
        record = logging.getLogger("django.request").makeRecord(
            "django.request",
            logging.ERROR,
            __file__,
            1,
            "Internal Server Error: %s",
            ("/v1/lookup",),
            sys.exc_info(),
            extra={"status_code": 500, "request": request},
        )

    line = JsonLogFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "Internal Server Error: /v1/lookup"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/v1/lookup", 500)
    assert entry["request_id"] == "req-7f3a"
    assert "RuntimeError: the product fell over" in entry["exc_info"]


@pytest.mark.django_db
def test_an_api_500_logs_as_one_json_line_with_its_path(client, bearer, monkeypatch, caplog):
    def broken(number):
        raise RuntimeError("the product fell over")

    monkeypatch.setattr("portal.demo_product.number_facts", broken)

    with caplog.at_level(logging.ERROR, logger="django.request"):
        client.get("/v1/lookup?q=5", **bearer)

    [record] = [r for r in caplog.records if r.name == "django.request"]
    entry = json.loads(JsonLogFormatter().format(record))
    assert (entry["level"], entry["path"], entry["status"]) == ("ERROR", "/v1/lookup", 500)
    assert "the product fell over" in entry["exc_info"]


WORKER_LOGS = """
import logging, django
django.setup()
from config import celery_app
celery_app.log.setup_logging_subsystem(loglevel="INFO")  # what `celery -A config worker` runs
logging.getLogger("celery.app.trace").error("Task metering.tasks.rollup_usage[1] raised")
"""


def test_a_celery_worker_logs_as_the_web_does(tmp_path):
    result = run_with_settings(
        WORKER_LOGS, tmp_path, drop=lambda key: key == "LOG_FORMAT", LOG_FORMAT="json"
    )

    assert result.returncode == 0, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert json.loads(line)["logger"] == "celery.app.trace"
