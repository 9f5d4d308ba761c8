"""When Redis does not answer: METERING_FAIL_MODE decides, within METERING_REDIS_TIMEOUT_MS
per attempt.

Two ways Redis fails: a closed port (refused at once) and a blackholed one (the connection is
accepted, nothing ever answers — the slow failure a timeout exists for). The bound asserted on
the time is loose on purpose (it proves three attempts bounded by the 50 ms timeout — the call,
its one retry and the void, see metering/limiter/redis.py — rather than redis-py's default of
retries with no timeout); the connection count proves there are no more.
"""

import logging
import socket
import threading
import time

import pytest
from django.utils import timezone

from metering import hotpath
from metering.limiter import get_limiter, set_limiter
from metering.limiter.base import LimiterUnavailable, Policy

pytestmark = pytest.mark.django_db


class Blackhole:
    """A TCP server that accepts connections and reads, but never answers."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self):
        self.server.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def blackholed_redis(settings):
    hole = Blackhole()
    settings.METERING_REDIS_URL = f"redis://127.0.0.1:{hole.port}/0"
    settings.METERING_REDIS_TIMEOUT_MS = 50
    set_limiter(None)
    yield hole
    hole.close()
    set_limiter(None)


@pytest.fixture
def closed_redis(settings):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    settings.METERING_REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.METERING_REDIS_TIMEOUT_MS = 50
    set_limiter(None)
    yield port
    set_limiter(None)


@pytest.fixture(params=["blackholed_redis", "closed_redis"])
def unreachable_redis(request):
    return request.getfixturevalue(request.param)


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def test_fail_closed_refuses_with_a_503_and_retry_after(unreachable_redis, api_key, call, settings):
    settings.METERING_FAIL_MODE = "closed"
    key = api_key(rate_limit_per_minute=10)

    response, elapsed = timed(lambda: call(key, "/v1/test/lookup"))

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "5"
    assert response.json()["type"].endswith("/service-unavailable/")
    assert elapsed < 0.5


def test_fail_open_admits_without_counting_and_says_so_once(
    unreachable_redis, api_key, call, settings, caplog, monkeypatch
):
    settings.METERING_FAIL_MODE = "open"
    # A fresh log throttle: an earlier test's failures must not hold this one's line back.
    monkeypatch.setattr(hotpath, "_log_unavailable", hotpath._Throttled(interval=10.0))
    key = api_key(rate_limit_per_minute=1)

    with caplog.at_level(logging.WARNING, logger="metering.hotpath"):
        responses = [call(key, "/v1/test/lookup") for _ in range(3)]

    # Over a limit of 1, all three pass: nothing could be counted.
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "RateLimit" not in responses[0]
    assert responses[0]["RateLimit-Policy"] == '"minute";q=1;w=60, "period";q=1000;w=' + str(
        round((key.account.current_period()[1] - key.account.period_start).total_seconds())
    )
    warnings = [r for r in caplog.records if "fail open" in r.getMessage()]
    # Rate-limited logging: one line for the burst of failures, not one per request.
    assert len(warnings) == 1


def any_policy() -> Policy:
    now = timezone.now()
    return Policy(
        rate_per_minute=10,
        burst=10,
        quota=10,
        overage_policy="block",
        overage_cap=None,
        period_start=now,
        period_end=now,
    )


def test_a_blackholed_redis_is_given_up_on_after_one_retry_and_a_void(blackholed_redis):
    limiter = get_limiter()
    policy = any_policy()

    started = time.perf_counter()
    with pytest.raises(LimiterUnavailable):
        limiter.hit(account_id=1, key_id=1, endpoint="x", cost=1, policy=policy)
    elapsed = time.perf_counter() - started

    assert 3 * 0.045 <= elapsed < 1.0
    assert len(blackholed_redis.connections) == 3


def test_a_closed_port_is_reported_at_once(closed_redis):
    policy = any_policy()

    started = time.perf_counter()
    with pytest.raises(LimiterUnavailable):
        get_limiter().hit(account_id=1, key_id=1, endpoint="x", cost=1, policy=policy)

    assert time.perf_counter() - started < 0.05
