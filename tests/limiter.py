"""Every test starts with empty limiter counters (a pytest plugin listed in tests/conftest.py).

Account ids repeat between tests (and between runs, each on a fresh test database), so counters
left by one test would rate-limit or bill another. The in-process backend is simply rebuilt.
On Redis, each test run keys its counters under a prefix of its own (``METERING_KEY_PREFIX``,
exported to the environment, so a Celery worker the tests start uses the same keys), and the
run's keys are deleted around each test: two runs sharing one Redis never see, or delete,
each other's counters. (The cache's ``cache.clear()`` in tests/conftest.py is a FLUSHDB of
REDIS_URL's database; set METERING_REDIS_URL to another database to share a Redis safely.)
"""

import contextlib
import os
import uuid

import pytest
from django.conf import settings as django_settings
from redis.exceptions import RedisError

from metering.limiter import get_limiter, set_limiter
from metering.limiter.redis import RedisLimiter


def pytest_configure(config):
    # Always a fresh prefix, whatever the shell exported: the tests delete their keys.
    prefix = f"mdtest-{uuid.uuid4().hex[:8]}"
    os.environ["METERING_KEY_PREFIX"] = prefix
    django_settings.METERING_KEY_PREFIX = prefix
    # The tests check what the limiter decides, not how fast: on a loaded CI machine a reply
    # can take longer than production's 50 ms. The fail-mode tests set their own timeout.
    os.environ["METERING_REDIS_TIMEOUT_MS"] = "2000"
    django_settings.METERING_REDIS_TIMEOUT_MS = 2000


def _forget_counters() -> None:
    set_limiter(None)
    if not django_settings.METERING_REDIS_URL:
        return
    limiter = get_limiter()
    if isinstance(limiter, RedisLimiter):
        # Redis down: the tests that need it skip (or fail in CI) on their own.
        with contextlib.suppress(RedisError):
            limiter.reset()
    set_limiter(None)


@pytest.fixture(autouse=True)
def _fresh_limiter():
    _forget_counters()
    yield
    _forget_counters()
