"""The process's limiter: Redis when ``METERING_REDIS_URL`` (by default ``REDIS_URL``) is set,
else the in-process backend.

``get_limiter()`` returns one instance per process, shared by all its threads. The instance is
remembered with the pid that made it: a forked child (a gunicorn worker forked after an import)
makes its own instead of inheriting a copy of its parent's in-process counters, which the
parent's rollup would also drain.
"""

import os
import threading

from django.conf import settings

from metering.limiter.base import Limiter

_lock = threading.Lock()
_instance: tuple[int, Limiter] | None = None


def build_limiter() -> Limiter:
    if settings.METERING_REDIS_URL:
        from metering.limiter.redis import RedisLimiter

        return RedisLimiter(
            settings.METERING_REDIS_URL,
            timeout_ms=settings.METERING_REDIS_TIMEOUT_MS,
            prefix=settings.METERING_KEY_PREFIX,
        )
    from metering.limiter.local import LocalLimiter

    return LocalLimiter()


def get_limiter() -> Limiter:
    global _instance
    current = _instance
    if current is not None and current[0] == os.getpid():
        return current[1]
    with _lock:
        if _instance is None or _instance[0] != os.getpid():
            _instance = (os.getpid(), build_limiter())
        return _instance[1]


def set_limiter(limiter: Limiter | None) -> None:
    """Install ``limiter`` for this process (None: build one from the settings on next use).
    The one it replaces is closed: only tests and the benchmarks swap limiters."""
    global _instance
    with _lock:
        previous = _instance
        _instance = None if limiter is None else (os.getpid(), limiter)
    if previous is not None and previous[0] == os.getpid() and previous[1] is not limiter:
        previous[1].close()
