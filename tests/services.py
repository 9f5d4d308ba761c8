"""Which outside services a test may rely on.

On a developer's laptop a test that needs Redis or Chromium is skipped with a reason; in CI
(``CI=true``) the same absence is a failure, so a green CI run means those tests really ran.
"""

import os
import shutil
import socket
from urllib.parse import urlparse

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The services a pass of .ci/run promises (e.g. "redis,postgres"). The embedded pass promises
# none, so its Redis tests skip; the services pass promises them, so a missing one fails.
REQUIRED = {s.strip() for s in os.environ.get("MDK_SERVICES_REQUIRED", "").split(",") if s.strip()}
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def missing(reason: str) -> None:
    """Skip on a laptop, fail in CI."""
    if IN_CI:
        pytest.fail(f"CI needs this: {reason}", pytrace=False)
    pytest.skip(reason)


def not_configured(service: str, reason: str) -> None:
    """Skip when this run did not configure ``service``, unless the run promised it."""
    if service in REQUIRED:
        pytest.fail(f"this run promised {service}: {reason}", pytrace=False)
    pytest.skip(reason)


def redis_url() -> str:
    """The Redis the tests may use (REDIS_URL), checked to answer; else skip or fail."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        not_configured(
            "redis", "REDIS_URL is not set (embedded mode; .ci/run's second pass sets it)"
        )
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 1).close()
    except OSError as exc:
        missing(f"Redis at {url} does not answer: {exc}")
    return url


def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("playwright is not installed")
    return CHROMIUM


def postgres_required() -> None:
    """Tests that need a database shared across processes (a real Celery worker)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        not_configured("postgres", "needs PostgreSQL (DATABASE_URL); the embedded pass uses SQLite")
