"""One pooled ``httpx.AsyncClient`` per process, shared by every proxied call.

Connections to the upstreams are kept alive and reused (up to ``GATEWAY_MAX_CONNECTIONS``);
a new client per request would pay a TCP (and TLS) handshake each time. The client belongs to
the event loop it was made on: an ASGI worker runs one loop for its whole life, so in
production that is one client per process. Anything else that runs the view on a loop of its
own (a test's loop, Django's WSGI handler making one per request) gets a client of its own,
dropped with its loop.

No redirects are followed (a 3xx goes back to the client as the upstream sent it: following
it could leave the staff-set base URL), no proxy or netrc is read from the environment, and
compressed bodies pass through as they are (``aiter_raw``).
"""

import asyncio
import weakref

import httpx
from django.conf import settings

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)


def upstream_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            # Each call sets the endpoint's own timeout; this default is never used by the proxy.
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(
                max_connections=settings.GATEWAY_MAX_CONNECTIONS,
                max_keepalive_connections=settings.GATEWAY_MAX_CONNECTIONS,
                keepalive_expiry=30.0,
            ),
        )
        _clients[loop] = client
    return client


async def upstream_clients_close() -> None:
    """Close this loop's client (ASGI lifespan shutdown, tests)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
