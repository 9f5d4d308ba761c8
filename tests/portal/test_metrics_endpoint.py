"""``/metrics``: Prometheus's text format behind a bearer token (a 404 while ``METRICS_TOKEN`` is
unset, a 401 with ``WWW-Authenticate`` for a missing or wrong token). The hot path's counters
move with admitted and refused calls; the gauges read at scrape time show a failing report, a
stalled rollup, unreported usage, failed webhooks and unapplied thin events.

Counters are per process and cumulative, so the tests compare a scrape before and after.
"""

import math
import os
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone
from djstripe.models import WebhookEventTrigger
from prometheus_client.parser import text_string_to_metric_families

from billing.models import MeterReport, StripeThinEvent
from metering.limiter import get_limiter
from metering.limiter.base import LimiterUnavailable
from tests.factories import (
    AccountFactory,
    ApiKeyFactory,
    MeterReportFactory,
    PaidTierFactory,
    StripeCustomerFactory,
    TierFactory,
    UsageRollupFactory,
)
from tests.metering.spending import spend

if TYPE_CHECKING:
    from tests.factories import IssuedApiKey

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-0123456789abcdef"
FAMILIES = {
    "meterdesk_api_admitted",
    "meterdesk_api_refused",
    "meterdesk_limiter_call_seconds",
    "meterdesk_rollup_lag_seconds",
    "meterdesk_usage_report_lag_seconds",
    "meterdesk_usage_reports_failed",
    "meterdesk_stripe_webhook_failures",
    "meterdesk_stripe_thin_events_unprocessed",
}


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


class Scrape:
    """One scrape's samples, read with prometheus-client's own parser."""

    def __init__(self, text: str):
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        for family in self.families.values():
            for found in family.samples:
                if found.name == sample and found.labels == labels:
                    return found.value
        return 0.0  # a labelled counter not incremented yet


def scrape(client) -> Scrape:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return Scrape(response.content.decode())


def refused(before: Scrape, after: Scrape) -> dict[str, float]:
    """The refusal counters that moved between two scrapes."""
    moved = {}
    for reason in ("auth", "scope", "suspended", "rate", "quota", "spend_cap", "unavailable"):
        delta = after.value("meterdesk_api_refused_total", reason=reason) - before.value(
            "meterdesk_api_refused_total", reason=reason
        )
        if delta:
            moved[reason] = delta
    return moved


# --- The door -------------------------------------------------------------------------------


def test_no_token_configured_is_a_404(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer é",
    ],
)
def test_a_missing_or_wrong_token_is_a_401(client, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}

    response = client.get("/metrics", **headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"meterdesk_" not in response.content


def test_the_right_token_gets_every_family_in_prometheus_text_format(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-cache" in response["Cache-Control"]
    assert set(Scrape(response.content.decode()).families) >= FAMILIES


def test_a_post_is_refused(client):
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


# --- Counters of the hot path ----------------------------------------------------------------


def test_an_admitted_call_counts_for_its_endpoint_and_times_the_limiter(client, bearer):
    before = scrape(client)

    assert client.get("/v1/lookup?q=12", **bearer).status_code == 200

    after = scrape(client)
    admitted = "meterdesk_api_admitted_total"
    assert after.value(admitted, endpoint="lookup") - before.value(admitted, endpoint="lookup") == 1
    calls = "meterdesk_limiter_call_seconds_count"
    # One limiter call, plus one more the first time a period's quota counter is seeded.
    assert after.value(calls) - before.value(calls) in (1, 2)
    assert refused(before, after) == {}


def key_for(**tier_fields) -> "IssuedApiKey":
    return ApiKeyFactory(account=AccountFactory(tier=TierFactory(**tier_fields)))


def test_refusals_are_counted_by_reason(client):
    suspended = ApiKeyFactory(account=AccountFactory(status="suspended", suspended_reason="x"))
    one_a_minute = key_for(rate_limit_per_minute=1)
    one_a_period = key_for(rate_limit_per_minute=600, included_units=1)
    capped = ApiKeyFactory(
        account=AccountFactory(
            tier=PaidTierFactory(
                included_units=1,
                overage_unit_price_cents=Decimal("1"),
                spend_cap_cents=1,  # pays for one unit past the included one
            )
        )
    )

    def get(key, path="/v1/lookup?q=7"):
        return client.get(path, HTTP_AUTHORIZATION=f"Bearer {key.plaintext}").status_code

    before = scrape(client)
    statuses = [
        client.get("/v1/me").status_code,
        client.get("/v1/me", HTTP_AUTHORIZATION="Bearer mdk_test_nope").status_code,
        client.post(
            "/v1/compute",
            {"values": [1, 2]},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {one_a_minute.plaintext}",
        ).status_code,
        get(suspended),
        get(one_a_minute),
        get(one_a_minute),
        get(one_a_period),
        get(one_a_period),
        get(capped),
        get(capped),
        get(capped),
    ]
    after = scrape(client)

    assert statuses == [401, 401, 403, 403, 200, 429, 200, 429, 200, 200, 429]
    assert refused(before, after) == {
        "auth": 2,
        "scope": 1,
        "suspended": 1,
        "rate": 1,
        "quota": 1,
        "spend_cap": 1,
    }


def test_an_unreachable_limiter_counts_as_unavailable_and_its_wait_is_timed(
    client, bearer, monkeypatch, settings
):
    settings.METERING_FAIL_MODE = "closed"

    def unreachable(**kwargs):
        time.sleep(0.002)
        raise LimiterUnavailable("timed out")

    monkeypatch.setattr(get_limiter(), "hit", unreachable)
    before = scrape(client)

    assert client.get("/v1/lookup?q=7", **bearer).status_code == 503

    after = scrape(client)
    assert refused(before, after) == {"unavailable": 1}
    total = "meterdesk_limiter_call_seconds_sum"
    assert after.value(total) - before.value(total) >= 0.002
    fast = "meterdesk_limiter_call_seconds_bucket"
    assert after.value(fast, le="0.001") == before.value(fast, le="0.001")


# --- Gauges read at scrape time ---------------------------------------------------------------


def test_all_clear_reads_zero(client):
    after = scrape(client)

    assert after.value("meterdesk_rollup_lag_seconds") == 0
    assert after.value("meterdesk_usage_report_lag_seconds") == 0
    for status in ("failed", "stale", "rejected", "suspect"):
        assert after.value("meterdesk_usage_reports_failed", status=status) == 0
    for kind in ("invalid", "error"):
        assert after.value("meterdesk_stripe_webhook_failures", kind=kind) == 0
    assert after.value("meterdesk_stripe_thin_events_unprocessed") == 0


def test_a_failed_report_shows_as_failed_and_as_report_lag(client, settings):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    MeterReportFactory(window_start=hour, status=MeterReport.Status.FAILED)
    MeterReportFactory(window_start=hour - timedelta(hours=30), status=MeterReport.Status.STALE)
    MeterReportFactory(window_start=hour - timedelta(hours=40), status=MeterReport.Status.SENT)

    after = scrape(client)

    assert after.value("meterdesk_usage_reports_failed", status="failed") == 1
    assert after.value("meterdesk_usage_reports_failed", status="stale") == 1
    assert after.value("meterdesk_usage_reports_failed", status="rejected") == 0
    # Due since its window closed (hour + 1 h) and the grace passed; the stale one is not retried.
    due = hour + timedelta(hours=1, seconds=settings.USAGE_REPORT_GRACE_SECONDS)
    lag = after.value("meterdesk_usage_report_lag_seconds")
    assert lag == pytest.approx((timezone.now() - due).total_seconds(), abs=30)


def test_usage_no_report_claimed_shows_as_report_lag_on_subscribed_accounts_only(client, settings):
    subscribed = AccountFactory(payment_status="active", stripe_customer=StripeCustomerFactory())
    free = AccountFactory()
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2, minutes=10)
    UsageRollupFactory(account=free, minute=minute - timedelta(hours=5), units=3)

    assert scrape(client).value("meterdesk_usage_report_lag_seconds") == 0

    UsageRollupFactory(account=subscribed, minute=minute, units=3)

    window_end = minute.replace(minute=0) + timedelta(hours=1)
    due = window_end + timedelta(seconds=settings.USAGE_REPORT_GRACE_SECONDS)
    lag = scrape(client).value("meterdesk_usage_report_lag_seconds")
    assert lag == pytest.approx((timezone.now() - due).total_seconds(), abs=30)


def test_a_stalled_rollup_shows_as_rollup_lag(client, api_key):
    ten_minutes_ago = time.time() - 600
    spend(api_key, at=ten_minutes_ago)

    lag = scrape(client).value("meterdesk_rollup_lag_seconds")

    # Due once its minute ended and the rollup's 120 s grace passed: 420 to 480 s ago.
    minute = ten_minutes_ago // 60 * 60
    assert lag == pytest.approx(time.time() - (minute + 60 + 120), abs=5)
    assert 415 <= lag <= 485


def test_usage_within_the_grace_is_no_rollup_lag(client, api_key):
    spend(api_key)

    assert scrape(client).value("meterdesk_rollup_lag_seconds") == 0


def trigger(*, valid: bool, exception: str = "", age: timedelta = timedelta(0)) -> None:
    row = WebhookEventTrigger.objects.create(
        remote_ip="127.0.0.1", headers={}, body="{}", valid=valid, exception=exception
    )
    if age:
        # created is auto_now_add: moved back afterwards.
        WebhookEventTrigger.objects.filter(pk=row.pk).update(created=timezone.now() - age)


def test_webhook_failures_of_the_last_day_and_unapplied_thin_events(client):
    trigger(valid=False, age=timedelta(days=2))  # too old to count
    trigger(valid=True, exception="boom", age=timedelta(hours=30))
    trigger(valid=True)
    trigger(valid=False)
    trigger(valid=True, exception="Stripe could not be reached")
    trigger(valid=True, exception="again")
    StripeThinEvent.objects.create(
        stripe_id="evt_1", type="v1.billing.meter.error_report_triggered"
    )
    StripeThinEvent.objects.create(
        stripe_id="evt_2", type="v1.billing.meter.no_meter_found", processed=timezone.now()
    )

    after = scrape(client)

    assert after.value("meterdesk_stripe_webhook_failures", kind="invalid") == 1
    assert after.value("meterdesk_stripe_webhook_failures", kind="error") == 2
    assert after.value("meterdesk_stripe_thin_events_unprocessed") == 1


def test_a_scrape_runs_a_handful_of_queries(client, django_assert_max_num_queries):
    subscribed = AccountFactory(payment_status="active", stripe_customer=StripeCustomerFactory())
    for account in [subscribed, *AccountFactory.create_batch(3, payment_status="past_due")]:
        UsageRollupFactory(account=account, minute=timezone.now() - timedelta(hours=3))
    MeterReportFactory(status=MeterReport.Status.FAILED)
    trigger(valid=False)

    # Report lag (2), reports by state (1), webhook failures (2), thin events (1).
    with django_assert_max_num_queries(6):
        scrape(client)


def test_a_database_error_leaves_the_gauges_nan_and_the_scrape_answering(
    client, bearer, monkeypatch
):
    def broken(**kwargs):
        raise RuntimeError("database is down")

    monkeypatch.setattr("billing.metrics.usage_report_lag_seconds", broken)

    after = scrape(client)

    assert math.isnan(after.value("meterdesk_usage_report_lag_seconds"))
    assert math.isnan(after.value("meterdesk_usage_reports_failed", status="failed"))
    assert after.value("meterdesk_rollup_lag_seconds") == 0


# --- gunicorn: several processes, one scrape ------------------------------------------------

COUNT_A_REFUSAL = """
import django
django.setup()
from metering.metrics import API_REFUSED
API_REFUSED.labels("auth").inc()
"""
SCRAPE = """
import django
django.setup()
from prometheus_client import generate_latest
from portal.observability.metrics import metrics_registry
print(generate_latest(metrics_registry()).decode())
"""


def run(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_with_a_multiprocess_directory_a_scrape_adds_up_every_process(tmp_path):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VAR_DIR": str(tmp_path),
        # A database with no tables, whatever this run's DATABASE_URL (CI's second pass names a
        # migrated PostgreSQL, whose gauges would read 0).
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }

    run(COUNT_A_REFUSAL, env)  # two workers, each counting one refusal
    run(COUNT_A_REFUSAL, env)
    output = Scrape(run(SCRAPE, env))  # a third answers the scrape

    assert output.value("meterdesk_api_refused_total", reason="auth") == 2
    # This scrape's process has no database (VAR_DIR is empty): its gauges are NaN, not a 500.
    assert math.isnan(output.value("meterdesk_usage_report_lag_seconds"))
