"""Two web nodes on one database and one Redis behave as one: every limit is exact across both,
and a change made through one holds on the other from its next request.

Each node is a real gunicorn (two workers, four threads) started from this test on the test
database, with the limiter keys of this test run; the clients are threads of this process.
PostgreSQL and Redis only: the embedded mode is one process by design.
"""

import http.client
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from metering.selectors import period_units
from metering.services import usage_rollup
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory
from tests.services import postgres_required, redis_url

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 32


@pytest.fixture(autouse=True)
def _services():
    postgres_required()
    redis_url()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


@contextmanager
def web_node(scratch: Path, name: str) -> Iterator[int]:
    """A gunicorn node of the project on a free port; yields the port once it answers."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "METERING_REDIS_URL": settings.METERING_REDIS_URL,
        "METERING_KEY_PREFIX": settings.METERING_KEY_PREFIX,
        # The production budget would make this test about a loaded CI machine's scheduler.
        "METERING_REDIS_TIMEOUT_MS": str(settings.METERING_REDIS_TIMEOUT_MS),
        # Tasks a node queues go to a queue nobody consumes in this test.
        "CELERY_TASK_DEFAULT_QUEUE": f"two-nodes-{os.getpid()}",
        # This process's key: the nodes must read the sessions it signs.
        "SECRET_KEY": settings.SECRET_KEY,
        "VAR_DIR": str(scratch),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    log = (scratch / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{port}",
            "--workers", "2", "--threads", "4",
            "--graceful-timeout", "5",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/healthz")[0] in (200, 503):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    f"web node {name} did not start:\n{(scratch / f'{name}.log').read_text()}"
                )
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _get(port: int, path: str, key: str | None = None) -> tuple[int, bytes]:
    return _request(port, "GET", path, {"Authorization": f"Bearer {key}"} if key else {})


def _signed_in_headers(user) -> dict[str, str]:
    """What a signed-in browser sends with a form POST: its session and CSRF cookies and the
    CSRF token (a session made here, in the database both nodes read)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    csrf = "c" * 32
    return {
        "Cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}; "
        f"{settings.CSRF_COOKIE_NAME}={csrf}",
        "X-CSRFToken": csrf,
        "Content-Length": "0",
    }


@pytest.fixture
def two_nodes() -> Iterator[tuple[int, int]]:
    with tempfile.TemporaryDirectory(prefix="mdk-two-nodes-") as folder, ExitStack() as stack:
        scratch = Path(folder)
        yield (
            stack.enter_context(web_node(scratch, "node-a")),
            stack.enter_context(web_node(scratch, "node-b")),
        )


def test_32_clients_over_two_nodes_get_exactly_the_quota_and_are_billed_for_it(two_nodes):
    # A quota of 150 units and a rate limit far above what the test sends: the quota binds.
    tier = TierFactory(included_units=150, rate_limit_per_minute=100_000)
    account = AccountFactory(tier=tier, period_start=timezone.now() - timedelta(hours=1))
    key = ApiKeyFactory(account=account)

    def client(index: int) -> Counter[int]:
        port = two_nodes[index % 2]
        statuses: Counter[int] = Counter()
        for _ in range(8):
            statuses[_get(port, "/v1/lookup?q=3", key.plaintext)[0]] += 1
        return statuses

    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = sum(pool.map(client, range(CLIENTS)), Counter())

    # 256 calls for 150 units: exactly 150 admitted, the rest refused for the quota, and not
    # one 503 while Redis is up.
    assert statuses == Counter({200: 150, 429: 106})
    usage_rollup(now=timezone.now() + timedelta(minutes=10))
    assert period_units(account.pk, account.period_start) == 150


def test_a_key_revoked_through_one_node_is_refused_by_the_other_at_its_next_request(two_nodes):
    node_a, node_b = two_nodes
    key = ApiKeyFactory(account=AccountFactory(tier=TierFactory(rate_limit_per_minute=6000)))
    # Both nodes have resolved (and cached) the key in every worker they may route to.
    for port in (node_a, node_b):
        for _ in range(8):
            assert _get(port, "/v1/lookup?q=3", key.plaintext)[0] == 200

    # The developer revokes the key on the keys page, served by node A; node B (whose workers
    # cached the key a moment ago) must refuse it from its next request, not after its cache.
    status, body = _request(
        node_a, "POST", f"/keys/{key.pk}/revoke/", _signed_in_headers(key.account.owner)
    )
    assert status == 302, body
    key.refresh_from_db()
    assert key.revoked_at is not None

    for port in (node_b, node_a):
        for _ in range(8):
            status, body = _get(port, "/v1/lookup?q=3", key.plaintext)
            assert status == 401, body
