"""Running a coroutine from a sync test, whatever loop the test's thread already runs.

Playwright's sync API keeps an event loop running in the main thread while the session's
browser is open (tests/browser.py), and both ``asyncio.run`` and asgiref's ``async_to_sync``
refuse to start one inside it. A test that drives async code directly runs it here: on a new
loop in a thread of its own, closed when the coroutine ends.
"""

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_on_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-loop") as executor:
        return executor.submit(asyncio.run, coroutine).result()
