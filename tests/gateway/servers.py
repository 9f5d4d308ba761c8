"""Real servers on loopback ports for the gateway's tests: uvicorn in a thread.

``AsgiServer`` runs any ASGI app (Meterdesk's own ``config.asgi.application``, or the test
upstream below) on ``127.0.0.1`` with an OS-chosen port, so tests exercise the real HTTP path:
sockets, raw paths, streaming, disconnects.
"""

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from asgiref.sync import SyncToAsync
from django.db import connections


class AsgiServer:
    def __init__(self, app: Any):
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "AsgiServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def close_server_connections() -> None:
    """Close the database connection Django's async views used: ``sync_to_async`` runs ORM
    calls in one shared thread, whose connection would keep the test database open."""
    executor = SyncToAsync.single_thread_executor
    executor.submit(connections.close_all).result(timeout=10)


@dataclass
class Received:
    method: str
    # As sent on the wire, still percent-encoded, with the query.
    path_and_query: str
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass
class TestUpstream:
    """The operator's service, as a test needs it. Paths:

    - ``/echo/{word}``: 200 JSON ``{"word": ...}``;
    - ``/units/{n}``: 200 with ``Meterdesk-Units: n`` (whatever text n is), after ``?sleep=S``;
    - ``/status/{code}``: answers that status;
    - ``/slow/{seconds}``: sleeps, then 200;
    - ``/stream``: server-sent events: ``first``, then waits for ``release`` (set by the test),
      then ``last``;
    - ``/upload``: 200 JSON with the body's length;
    - ``/headers``: 200 with hop-by-hop and rate-limit headers of its own, and a cookie;
    - ``/verified``: 200 when ``verifier`` accepts the request, else 401.
    """

    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    finished_stream: threading.Event = field(default_factory=threading.Event)
    verifier: Callable[[Received], bool] | None = None

    async def __call__(self, scope, receive, send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw_path = scope["raw_path"].decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        headers: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        request = Received(
            scope["method"], raw_path + (f"?{query}" if query else ""), headers, body
        )
        self.received.append(request)
        parts = scope["path"].split("/")
        kind = parts[1] if len(parts) > 1 else ""
        argument = "/".join(parts[2:])

        async def answer(
            status: int, payload: Any, extra: Sequence[tuple[bytes, bytes]] = ()
        ) -> None:
            data = json.dumps(payload).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), *extra],
                }
            )
            await send({"type": "http.response.body", "body": data})

        if kind == "echo":
            await answer(200, {"word": argument, "query": parse_qs(query)})
        elif kind == "units":
            # ?sleep=S: answer after S seconds (calls in flight together).
            await asyncio.sleep(float(parse_qs(query).get("sleep", ["0"])[0]))
            await answer(200, {"units": argument}, [(b"meterdesk-units", argument.encode())])
        elif kind == "status":
            await answer(int(argument), {"status": int(argument)})
        elif kind == "slow":
            await asyncio.sleep(float(argument))
            await answer(200, {"slept": float(argument)})
        elif kind == "upload":
            await answer(200, {"length": len(body)})
        elif kind == "headers":
            await answer(
                200,
                {},
                [
                    (b"connection", b"close, x-hop"),
                    (b"x-hop", b"connection-only"),
                    (b"keep-alive", b"timeout=5"),
                    (b"x-upstream", b"yes"),
                    (b"ratelimit", b"upstream's own"),
                    (b"set-cookie", b"flavour=oat; Path=/; HttpOnly"),
                ],
            )
        elif kind == "verified":
            ok = self.verifier is not None and self.verifier(request)
            await answer(200 if ok else 401, {"verified": ok})
        elif kind == "stream":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        (b"cache-control", b"no-cache"),
                    ],
                }
            )
            await send(
                {"type": "http.response.body", "body": b"data: first\n\n", "more_body": True}
            )
            released = await asyncio.to_thread(self.release.wait, 10)
            await send(
                {"type": "http.response.body", "body": b"data: last\n\n" if released else b""}
            )
            self.finished_stream.set()
        else:
            await answer(404, {"missing": scope["path"]})


def usage_of(account_id: int, endpoint: str) -> tuple[int, int]:
    """(units, requests) the limiter holds for one endpoint of an account, every minute."""
    from metering.limiter import get_limiter

    units = requests = 0
    for counts in get_limiter().live_usage(account_id).values():
        for count in counts:
            if count.endpoint == endpoint:
                units += count.units
                requests += count.requests
    return units, requests
