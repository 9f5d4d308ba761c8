"""``GatewayFront``: an ASGI app in front of Django's that answers the gateway's routes itself.

Why: Django 5.2's ASGI handler costs ~8 ms of CPU per request on our host before any view runs
(thread hand-offs for the request signals and the sync parts, docs/performance.md), which put
the gateway at 0.04 x nginx. A call to an operator's endpoint needs none of it: no session, no
CSRF, no template, no ORM when warm. So a ``/v1/`` request whose path Django would route to the
proxy (``resolve`` says so: the built-in endpoints, ``/v1/keys/verify`` and the rest keep their
precedence) goes straight to ``gateway.proxy.proxy_call``, with its body streamed to the
upstream as it arrives. Everything else, and any path no live endpoint answers (the API's 404),
goes to Django unchanged.

What Django's middleware would have done to such a request is done here, where it applies:
the Host is checked against ``ALLOWED_HOSTS`` (else Django answers its 400); a plain-HTTP call
that ``SECURE_SSL_REDIRECT`` would redirect goes to Django, which redirects it; the security
headers SecurityMiddleware and XFrameOptionsMiddleware add to every answer are added here.
"""

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, resolve

from gateway.proxy import ProxyRequest, ProxyResponse, proxy_call

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The proxy's URL name (gateway/urls.py).
PROXY_URL_NAME = "gateway-proxy"


def _security_headers() -> list[tuple[bytes, bytes]]:
    """What SecurityMiddleware and XFrameOptionsMiddleware put on every answer, from the same
    settings (HSTS is added per request: only over HTTPS)."""
    headers = []
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        value = policy if isinstance(policy, str) else ",".join(policy)
        headers.append((b"referrer-policy", value.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(
            (b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode())
        )
    headers.append((b"x-frame-options", getattr(settings, "X_FRAME_OPTIONS", "DENY").encode()))
    return headers


def _hsts() -> bytes | None:
    if not settings.SECURE_HSTS_SECONDS:
        return None
    value = f"max-age={settings.SECURE_HSTS_SECONDS}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return value.encode()


class GatewayFront:
    def __init__(self, django_app: ASGIApp):
        self.django_app = django_app
        self.security_headers = _security_headers()
        self.hsts = _hsts()
        self.allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not self.allowed_hosts:
            # Django's own rule for an empty ALLOWED_HOSTS under DEBUG (HttpRequest.get_host).
            self.allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
        self.proxy_header = settings.SECURE_PROXY_SSL_HEADER

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _path_info(scope).startswith("/v1/") and self._ours(scope):
            await self._serve(scope, receive, send)
            return
        await self.django_app(scope, receive, send)

    def _ours(self, scope: Scope) -> bool:
        """Whether Django would route this request to the proxy, and nothing on the way would
        have answered it first (a bad Host, an HTTPS redirect)."""
        if not _routed_to_proxy(_path_info(scope)):
            return False
        if not self._host_allowed(scope):
            return False
        return self._secure(scope) or not settings.SECURE_SSL_REDIRECT

    def _host_allowed(self, scope: Scope) -> bool:
        host = _header(scope, b"host")
        if host is None:
            server = scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else ""
        domain, _port = split_domain_port(host)
        return bool(domain) and validate_host(domain, self.allowed_hosts)

    def _secure(self, scope: Scope) -> bool:
        if self.proxy_header is not None:
            name, expected = self.proxy_header
            # The setting names a META key (HTTP_X_FORWARDED_PROTO); the header it reads.
            header = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
            return _header(scope, header) == expected
        return scope.get("scheme") == "https"

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _RequestBody(receive)
        await body.start()
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        declared = _header(scope, b"content-length")
        call = ProxyRequest(
            method=scope["method"],
            raw_path=(scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            content_length=int(declared) if declared and declared.isdigit() else None,
            body=None if body.empty else body.chunks(),
            peer=(scope.get("client") or ("",))[0],
            scheme=scope.get("scheme", "http"),
        )
        # A client leaving (``http.disconnect``, listened for once the body is in) cancels the
        # call: before the upstream answered, its units go back; in the middle of a stream, the
        # upstream's connection is closed. The call runs in this task, not a task of its own:
        # the watcher cancels this one (one task per call, not two and a wait).
        this = asyncio.current_task()
        assert this is not None
        finished = False

        def client_left(watcher: asyncio.Future[None]) -> None:
            if not watcher.cancelled() and not finished:
                this.cancel()

        watcher = asyncio.ensure_future(body.disconnected())
        watcher.add_done_callback(client_left)
        try:
            answered = await self._answer(call, scope, send)
            finished = True
        except asyncio.CancelledError:
            if watcher.cancelled() or not watcher.done():
                raise  # cancelled from outside (the server shutting down)
            this.uncancel()
            return
        finally:
            watcher.cancel()
        if not answered:
            # Resolved to the proxy, but no live endpoint is there: the API's 404, from Django,
            # which reads the request as if nothing had.
            await self.django_app(scope, body.replayed(), send)

    async def _answer(self, call: ProxyRequest, scope: Scope, send: Send) -> bool:
        """Answer ``call``; False when no live endpoint is at its path."""
        answer = await proxy_call(call)
        if answer is None:
            return False
        await self._send(answer, scope, send)
        return True

    async def _send(self, answer: ProxyResponse, scope: Scope, send: Send) -> None:
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
        headers.extend(self.security_headers)
        if self.hsts is not None and self._secure(scope):
            headers.append((b"strict-transport-security", self.hsts))
        if isinstance(answer.body, bytes):
            headers.append((b"content-length", str(len(answer.body)).encode()))
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": answer.body})
            return
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        async for chunk in answer.body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


class _RequestBody:
    """The request body off ASGI ``receive``, as it arrives; then the disconnect, if any."""

    def __init__(self, receive: Receive):
        self.receive = receive
        self.first = b""
        self.more = False
        self.done = asyncio.Event()
        self.gone = False

    async def start(self) -> None:
        """Read the first message: a body-less request (most calls) is known at once."""
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.gone = True
        else:
            self.first = message.get("body", b"")
            self.more = message.get("more_body", False)
        if not self.more:
            self.done.set()

    @property
    def empty(self) -> bool:
        return not self.first and not self.more

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.first:
            yield self.first
        while self.more:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                self.done.set()
                raise asyncio.CancelledError()
            self.more = message.get("more_body", False)
            if message.get("body"):
                yield message["body"]
        self.done.set()

    def replayed(self) -> Receive:
        """``receive`` for a request whose first message was read here and nothing more."""
        first: Message | None = {
            "type": "http.request",
            "body": self.first,
            "more_body": self.more,
        }

        async def receive() -> Message:
            nonlocal first
            if first is not None:
                message, first = first, None
                return message
            return await self.receive()

        return receive

    async def disconnected(self) -> None:
        """Returns when the client has gone (never, for one that stays)."""
        if self.gone:
            return
        await self.done.wait()
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return


@functools.lru_cache(maxsize=4096)
def _routed_to_proxy(path: str) -> bool:
    """Whether the URLconf sends ``path`` to the proxy. Remembered per path (the URLconf does
    not change while the process runs): resolving walks the built-in routes first each time."""
    try:
        return resolve(path).url_name == PROXY_URL_NAME
    except Resolver404:
        return False


def _path_info(scope: Scope) -> str:
    """The path below the app's mount point, as Django's handler takes it."""
    root = scope.get("root_path", "")
    path: str = scope["path"]
    return path.removeprefix(root) if root else path


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
