"""When each API key was last used, collected off the hot path.

A request records (key id → time) in this process's buffer: a dict write under a lock, no SQL,
no network. ``portal.services.api_key_flush_last_used`` drains the buffer into one bulk UPDATE.
Who calls it: a timer thread in each web process every ``API_KEY_LAST_USED_FLUSH_SECONDS``
(started on the first recorded use, after any fork), the ``flush_last_used`` command and the
beat task of the same name (both flush the buffer of the process they run in: in the embedded
mode that is the web process), and an exit hook. Trade-off, taken on purpose: a process killed
hard loses at most one interval of last-used times; they are approximate by design, and no
request pays a round trip for them.
"""

import atexit
import logging
import os
import threading
import time

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


class LastUsedBuffer:
    def __init__(self) -> None:
        self._times: dict[int, float] = {}
        self._lock = threading.Lock()
        self._flusher_pid: int | None = None
        self._stop = threading.Event()
        self._exit_hook = False

    def record(self, key_id: int, when: float | None = None) -> None:
        with self._lock:
            self._times[key_id] = time.time() if when is None else when
        if self._flusher_pid != os.getpid():
            self._start_flusher()

    def drain(self) -> dict[int, float]:
        """Take everything recorded so far (key id → Unix time of its latest use)."""
        with self._lock:
            times, self._times = self._times, {}
        return times

    def restore(self, times: dict[int, float]) -> None:
        """Put back what a failed flush took, keeping any newer use recorded meanwhile."""
        with self._lock:
            for key_id, when in times.items():
                if self._times.get(key_id, 0) < when:
                    self._times[key_id] = when

    def __len__(self) -> int:
        return len(self._times)

    def _start_flusher(self) -> None:
        interval = settings.API_KEY_LAST_USED_FLUSH_SECONDS
        with self._lock:
            # One flusher per process: a forked worker inherits the parent's pid mark, not its
            # thread, so the comparison starts a new one there.
            if self._flusher_pid == os.getpid():
                return
            self._flusher_pid = os.getpid()
        if interval <= 0:
            return
        self._stop = threading.Event()
        thread = threading.Thread(
            target=_flush_forever,
            args=(interval, self._stop),
            name="api-key-last-used",
            daemon=True,
        )
        thread.start()
        if not self._exit_hook:
            self._exit_hook = True
            atexit.register(_flush_once)

    def stop_flusher(self) -> None:
        """Stop this process's timer thread; the next recorded use starts a new one."""
        self._stop.set()
        with self._lock:
            self._flusher_pid = None


def _flush_once() -> None:
    from portal.services import api_key_flush_last_used

    try:
        api_key_flush_last_used()
    except Exception:
        # Last-used times are a convenience; a failed write must never take a worker down.
        logger.exception("Could not write API keys' last-used times")
    finally:
        # This thread's own connection; holding it between flushes would pin a database slot.
        connection.close()


def _flush_forever(interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        _flush_once()


# This process's buffer, written by the API's authentication class.
last_used_buffer = LastUsedBuffer()
