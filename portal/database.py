"""Database reads from async code outside Django's request cycle (the gateway's front, and the
limiter's quota seed it calls), with the connection cared for as Django's request cycle would.

Django checks its connections at the start and end of every request it handles
(``close_old_connections`` on ``request_started`` / ``request_finished``): a connection past
``CONN_MAX_AGE`` (0 under ``config.asgi``) or broken is closed there. The gateway's front
answers outside Django's handler (gateway/asgi.py), so those signals never fire for it, and the
one thread ``sync_to_async`` runs its reads in would keep a connection open forever, broken
after a database restart included. Each read here (a key the cache does not hold, the route
table every few seconds, the tiers named in a scope refusal, a quota seed: none on a warm call)
checks the connection before it and closes it after, as its own small request.
"""

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection

P = ParamSpec("P")
R = TypeVar("R")


async def db_read(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` in Django's thread for sync code, with a checked connection."""

    def run() -> R:
        # Inside a transaction (a test's, or a request's under ATOMIC_REQUESTS) the connection
        # is its owner's to keep: closing it would end the transaction.
        own = not connection.in_atomic_block
        if own:
            close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            if own:
                close_old_connections()

    return await sync_to_async(run)()
