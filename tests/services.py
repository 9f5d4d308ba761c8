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


def _topology_url(service: str, variable: str, example: str) -> str:
    """A Redis Cluster or Sentinel URL from ``variable``, checked to have a node that answers."""
    from metering.limiter.topology import redis_target

    url = os.environ.get(variable, "")
    if not url:
        not_configured(
            service,
            f"{variable} is not set (e.g. {variable}={example}; "
            ".ci/redis-topologies.sh start runs one on loopback)",
        )
    errors = []
    for host, port in redis_target(url).nodes:
        try:
            socket.create_connection((host, port), 1).close()
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc}")
            continue
        return url
    missing(f"no node {variable} names answers ({'; '.join(errors)})")
    return url


def redis_cluster_url() -> str:
    """The Redis Cluster the topology tests may kill nodes of (``REDIS_CLUSTER_URL``)."""
    return _topology_url(
        "redis-cluster", "REDIS_CLUSTER_URL", "redis-cluster://127.0.0.1:7000,127.0.0.1:7001"
    )


def redis_sentinel_url() -> str:
    """The Sentinel setup the topology tests may fail over (``REDIS_SENTINEL_URL``)."""
    return _topology_url(
        "redis-sentinel",
        "REDIS_SENTINEL_URL",
        "redis-sentinel://127.0.0.1:27100,127.0.0.1:27101,127.0.0.1:27102/mdk",
    )


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


def redis_server_binary() -> str:
    """redis-server, for tests that start (and kill) Redis processes of their own; skipped on a
    laptop without it, a failure in a run that promised Redis."""
    binary = shutil.which("redis-server")
    if binary is None:
        not_configured("redis", "redis-server is not installed (apt-get install redis-server)")
    assert binary is not None
    return binary
