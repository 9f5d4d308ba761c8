"""HTTP/1.1 to the operators' upstreams: kept-alive connections, one pool per event loop.

The proxy's own client, on an asyncio ``Protocol`` with httptools (llhttp, the parser uvicorn
serves with) reading the answers. httpx's transport, used before, spent about half of the
proxy's CPU per call in its layers: h11's pure-Python parsing, anyio's stream wrappers, and a
pool that asks every kept connection's socket whether it is readable on each request
(docs/performance.md). Here a kept connection knows it was closed because its protocol was told
(``connection_lost``), and choosing one is a list pop.

What it does, and no more, because a proxy serving many developers must not carry anything
from one call to the next: HTTP/1.1 over TCP or TLS; a body of declared length streamed as it
arrives; the answer streamed as it comes, with back-pressure on the upstream's socket; up to
``GATEWAY_MAX_CONNECTIONS`` connections per process, kept ``KEEPALIVE_SECONDS`` when idle. No
cookies, no redirects (they could leave the staff-set base URL), no proxies or netrc from the
environment, and no second send of a call that may have reached the upstream: only a bodiless
idempotent call (RFC 9110 §9.2.2) whose kept connection the upstream closed before answering
anything is sent once more, on a new connection (the race every keep-alive client has with a
server's idle timeout).

The pool belongs to the loop it was made on: an ASGI worker runs one loop for its whole life,
so in production there is one per process; a test's loop gets its own, dropped with it.
"""

import asyncio
import collections
import dataclasses
import functools
import ssl
import time
import weakref
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

import certifi
import httptools
from django.conf import settings

# An idle connection is closed after this long (upstream servers close theirs after 5 s
# (uvicorn) to 75 s (nginx); a connection they closed first is noticed and dropped).
KEEPALIVE_SECONDS = 30.0
# Reading from the upstream pauses while this much of its answer waits for the client, and
# resumes once less than a quarter does.
_READ_HIGH_WATER = 256 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Characters a request target may not hold as they are (controls, space, bytes past ASCII):
# sent percent-encoded. The query arrives as its bytes decoded as Latin-1, so U+0080..U+00FF
# stand for the bytes 0x80..0xFF and are encoded as those bytes.
_UNSAFE_TARGET = {c: f"%{c:02X}" for c in (*range(0x21), 0x7F, *range(0x80, 0x100))}
_NO_LINE_BREAKS = {0x0D: " ", 0x0A: " "}
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))


class UpstreamError(Exception):
    """The upstream could not be reached, or broke the exchange off (the proxy's 502)."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer, or stopped sending, within the endpoint's timeout (504)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    # "host[:port]" as the Host header names it (the port left out when it is the scheme's).
    host_header: str = dataclasses.field(compare=False)


@functools.lru_cache(maxsize=1024)
def _base(base_url: str) -> tuple[Origin, str]:
    """An upstream's base URL as where to connect and the path its requests start with."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        raise UpstreamError(f"not an http(s) URL: {base_url!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    named = f"[{host}]" if ":" in host else host
    host_header = named if port == default else f"{named}:{port}"
    return Origin(scheme, host, port, host_header), parts.path.rstrip("/")


class _Connection(asyncio.Protocol):
    """One kept-alive connection, carrying one exchange at a time."""

    def __init__(self, pool: "UpstreamPool", origin: Origin):
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self._write_ready: asyncio.Future[None] | None = None
        self._exchange: _Exchange | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange is None:
            # Bytes nobody asked for: the connection's framing is lost.
            self.close()
            return
        exchange.received(data)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.resume_writing()  # a send waiting for room finds the connection closed
        if self._exchange is not None:
            self._exchange.lost(exc)
        self.pool._forget(self)

    def pause_writing(self) -> None:
        self._write_ready = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)
        self._write_ready = None

    # the exchange's side

    async def send(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamError("the connection was closed")
        self.transport.write(data)
        if self._write_ready is not None:
            await self._write_ready
            if self.closed:
                raise UpstreamError("the connection was closed")

    def begin(self, exchange: "_Exchange") -> None:
        self._exchange = exchange

    def end(self, *, reusable: bool) -> None:
        self._exchange = None
        if reusable and not self.closed:
            self.pool._release(self)
        else:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self.pool._forget(self)


class _Exchange:
    """One request and its answer on a connection: httptools' callbacks fill it in."""

    def __init__(self, connection: _Connection, *, head: bool, read_timeout: float):
        self.connection = connection
        self.head = head
        self.read_timeout = read_timeout
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.headers_done = False
        self.complete = False
        # Whether the answer lets the connection carry another exchange (llhttp forgets its
        # Connection flags once a message is complete, so it is read then).
        self.keep_alive = False
        self.sent_whole = False
        self.error: UpstreamError | None = None
        self.any_byte = False
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._until_close = False

    # httptools' callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            # A second answer in the bytes of the first (nothing was asked for it): ignored,
            # and the connection, whose framing is now in doubt, is not kept.
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete:
            return
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows.
            self.headers.clear()
            return
        self.headers_done = True
        names = {name.lower() for name, _ in self.headers}
        if self.head:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()
        elif "content-length" not in names and "transfer-encoding" not in names:
            self._until_close = self.status not in (204, 304)
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:  # bytes after a HEAD answer's headers, or after a whole answer
            self.keep_alive = False
            return
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _READ_HIGH_WATER and not self._paused:
            self._paused = True
            assert self.connection.transport is not None
            self.connection.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers_done and not self.complete:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()
            self._wake()

    # from the connection

    def received(self, data: bytes) -> None:
        self.any_byte = True
        if self.complete:
            self.connection.close()  # more than the answer: not reusable
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"a malformed answer: {exc}"))

    def lost(self, exc: Exception | None) -> None:
        if self.complete:
            return
        if self.headers_done and self._until_close and exc is None:
            self.complete = True  # a body delimited by the connection's end
            self._wake()
        else:
            self._fail(UpstreamError("the connection was closed mid-answer"))

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self.connection.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout: float | None) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            raise UpstreamTimeout(f"nothing from the upstream for {timeout:g} s") from None
        finally:
            self._waiter = None

    # the caller's side

    async def answer_headers(self) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self._wait(None)  # the caller's timeout covers the wait for the headers

    async def body(self) -> AsyncIterator[bytes]:
        try:
            while True:
                if self._body:
                    chunk = self._body.popleft()
                    self._buffered -= len(chunk)
                    if self._paused and self._buffered < _READ_HIGH_WATER // 4:
                        self._paused = False
                        if self.connection.transport is not None:
                            self.connection.transport.resume_reading()
                    yield chunk
                elif self.complete:
                    return
                elif self.error is not None:
                    raise self.error
                else:
                    await self._wait(self.read_timeout)
        finally:
            self.finish()

    def finish(self) -> None:
        """Give the connection back (the answer was read whole) or close it."""
        if self.connection._exchange is self:
            reusable = self.complete and self.keep_alive and self.sent_whole and not self.error
            self.connection.end(reusable=reusable and not self._until_close)


@dataclasses.dataclass(slots=True)
class UpstreamResponse:
    status: int
    # Names as the upstream sent them, in order, repeated names kept.
    headers: list[tuple[str, str]]
    _exchange: _Exchange

    def header(self, name: str) -> str | None:
        """The first value of ``name`` (lower case)."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def body(self) -> AsyncIterator[bytes]:
        """The body as it arrives, undecoded (a compressed answer stays compressed). Raises
        ``UpstreamError`` if the upstream breaks it off, ``UpstreamTimeout`` if it stops
        sending for the read timeout. The connection goes back to the pool when the body has
        been read whole, and is closed if it is left before."""
        return self._exchange.body()

    def close(self) -> None:
        """Done with the answer, read or not."""
        self._exchange.finish()


class UpstreamPool:
    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None):
        self.max_connections = max_connections
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def request(
        self,
        method: str,
        base_url: str,
        path_and_query: str,
        *,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None = None,
        content_length: int | None = None,
        read_timeout: float,
    ) -> UpstreamResponse:
        """Send one request to ``base_url`` (an upstream's, staff-set: its path is a prefix)
        + ``path_and_query`` and wait for its answer's headers (the caller bounds that wait).
        ``headers`` go as given, after ``Host`` (and ``Content-Length`` when there is a body)."""
        origin, prefix = _base(base_url)
        target = (prefix + path_and_query).translate(_UNSAFE_TARGET)
        if not target.isascii():  # past U+00FF: only from a staff-set base URL
            target = quote(target, safe=_PRINTABLE)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {origin.host_header}"]
        # Values with a line break would forge headers; an HTTP server never hands one over,
        # so this only guards against a mistake of ours.
        lines.extend(f"{name}: {value.translate(_NO_LINE_BREAKS)}" for name, value in headers)
        if body is not None:
            if content_length is None:
                raise ValueError("a body is sent with its length (chunked bodies are buffered)")
            lines.append(f"Content-Length: {content_length}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        resend = method in _IDEMPOTENT and body is None
        fresh = False
        while True:
            connection = await self._connection(origin, fresh=fresh)
            exchange = _Exchange(connection, head=method == "HEAD", read_timeout=read_timeout)
            connection.begin(exchange)
            try:
                await self._send(connection, exchange, head, body)
                await exchange.answer_headers()
            except UpstreamError:
                exchange.finish()
                if resend and connection.reused and not exchange.any_byte:
                    # The upstream closed a kept connection; once more, on a new one.
                    resend, fresh = False, True
                    continue
                raise
            except BaseException:
                exchange.finish()  # cancelled (the client left, the timeout): not reusable
                connection.close()
                raise
            return UpstreamResponse(exchange.status, exchange.headers, exchange)

    @staticmethod
    async def _send(
        connection: _Connection, exchange: _Exchange, head: bytes, body: AsyncIterator[bytes] | None
    ) -> None:
        try:
            if body is None:
                await connection.send(head)
            else:
                # The head goes with the first chunk: one write, one packet for a small body.
                pending: bytes | None = head
                async for chunk in body:
                    await connection.send(pending + chunk if pending is not None else chunk)
                    pending = None
                if pending is not None:
                    await connection.send(pending)
            exchange.sent_whole = True
        except UpstreamError:
            # An upstream may answer (a 413, a 401) and close before reading the whole body.
            if not exchange.headers_done:
                raise

    async def _connection(self, origin: Origin, *, fresh: bool = False) -> _Connection:
        """A kept connection to ``origin`` (the most recently used) unless ``fresh``, else a
        new one if the limit allows (closing an idle one if need be), else the next freed."""
        while True:
            idle = self._idle.get(origin)
            now = time.monotonic()
            while idle and not fresh:
                connection = idle.pop()
                if connection.closed:
                    continue
                if now - connection.idle_since > KEEPALIVE_SECONDS:
                    connection.close()
                    continue
                connection.reused = True
                return connection
            if len(self._open) < self.max_connections or self._drop_one_idle():
                return await self._connect(origin)
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: the turn passes to the next
                raise
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = _Connection(self, origin)
        self._open.add(connection)
        try:
            await loop.create_connection(
                lambda: connection,
                origin.host,
                origin.port,
                ssl=self._ssl_context() if origin.scheme == "https" else None,
            )
        except (OSError, ssl.SSLError) as exc:
            self._forget(connection)
            raise UpstreamError(f"could not connect to {origin.host_header}: {exc}") from exc
        except BaseException:
            self._forget(connection)
            raise
        return connection

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=certifi.where())
        return self._ssl

    def _drop_one_idle(self) -> bool:
        """Close the longest-idle kept connection to make room; False if none is idle."""
        oldest: _Connection | None = None
        for connections in self._idle.values():
            if connections and (oldest is None or connections[0].idle_since < oldest.idle_since):
                oldest = connections[0]
        if oldest is None:
            return False
        self._idle[oldest.origin].remove(oldest)
        oldest.close()
        return True

    def _release(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._wake_one()

    def _forget(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            idle = self._idle.get(connection.origin)
            if idle and connection in idle:
                idle.remove(connection)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        await asyncio.sleep(0)  # let the transports close


_pools: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, UpstreamPool]" = (
    weakref.WeakKeyDictionary()
)


def upstream_pool() -> UpstreamPool:
    """This event loop's pool (made on first use)."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = UpstreamPool(max_connections=settings.GATEWAY_MAX_CONNECTIONS)
    return pool
