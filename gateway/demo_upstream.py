"""The demo's upstream: a small API run as its own process by ``make run`` and sold through the
gateway, as an operator's existing service would be. Its OpenAPI document is
``gateway/demo_openapi.yaml`` (imported on start).

A plain ASGI app (run with uvicorn), three operations:

- ``GET /echo/{word}``: the word back, with its length (1 unit, every tier);
- ``POST /words``: counts the words of a text body; the price is one unit per started 100
  words, reported in ``Meterdesk-Units`` (variable cost, at most 20 units; pro tiers);
- ``GET /ticks?count=N``: server-sent events, one tick every 0.2 s (2 units, every tier).

It verifies Meterdesk's signature on every call (``Meterdesk-Signature``, docs/gateway.md) when
it is given the upstream's signing secret (``DEMO_UPSTREAM_SECRET``), and answers 401 otherwise.
"""

import asyncio
import hashlib
import hmac
import json
import math
import os
import time
from urllib.parse import parse_qs, unquote

SIGNED = [
    "meterdesk-timestamp",
    "meterdesk-account",
    "meterdesk-key",
    "meterdesk-tier",
    "meterdesk-request-id",
]
MAX_TICKS = 50
WORDS_PER_UNIT = 100


def signature_valid(secret: str, method: str, path_and_query: str, headers: dict) -> bool:
    """docs/gateway.md's verification, as an upstream runs it."""
    try:
        skew = abs(time.time() - int(headers.get("meterdesk-timestamp", "")))
    except ValueError:
        return False
    message = "\n".join([method.upper(), path_and_query, *(headers.get(h, "") for h in SIGNED)])
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return skew <= 300 and hmac.compare_digest(expected, headers.get("meterdesk-signature", ""))


class DemoUpstream:
    def __init__(self, secret: str | None = None):
        # None: read DEMO_UPSTREAM_SECRET when the first call comes (make run sets it).
        self.secret = secret

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = (await receive())["type"]
                if event == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope["query_string"].decode("latin-1")
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        target += f"?{query}" if query else ""
        secret = self.secret or os.environ.get("DEMO_UPSTREAM_SECRET", "")
        if not secret or not signature_valid(secret, scope["method"], target, headers):
            await _json(send, 401, {"error": "not signed by Meterdesk"})
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and path.startswith("/echo/") and path.count("/") == 2:
            word = unquote(path.removeprefix("/echo/"))
            await _json(send, 200, {"word": word, "length": len(word)})
        elif method == "POST" and path == "/words":
            words = len(body.decode("utf-8", "replace").split())
            units = max(1, math.ceil(words / WORDS_PER_UNIT))
            await _json(send, 200, {"words": words, "units": units}, units=units)
        elif method == "GET" and path == "/ticks":
            count = parse_qs(query).get("count", ["5"])[0]
            await _ticks(send, min(MAX_TICKS, int(count) if count.isdigit() else 5))
        else:
            await _json(send, 404, {"error": f"no operation at {method} {path}"})


async def _json(send, status: int, payload: dict, units: int | None = None) -> None:
    headers = [(b"content-type", b"application/json")]
    if units is not None:
        headers.append((b"meterdesk-units", str(units).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def _ticks(send, count: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    for tick in range(1, count + 1):
        event = f"event: tick\ndata: {json.dumps({'tick': tick, 'of': count})}\n\n"
        await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
        await asyncio.sleep(0.2)
    await send({"type": "http.response.body", "body": b""})


app = DemoUpstream()
