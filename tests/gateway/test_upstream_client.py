"""The proxy's HTTP/1.1 client (gateway/upstream.py) against raw TCP servers on loopback ports:
kept connections reused and dropped when they should be, the race with a server closing a kept
connection, the answer's framings (length, chunked, until close, HEAD, interim answers), flow
control both ways, the request as it reaches the wire, failures as ``UpstreamError`` with no
connection left behind, and the connection limit.

Each server is an ``asyncio.start_server`` in the test's own event loop, written byte by byte,
so a test chooses exactly when an answer comes and when a connection closes; the server
counts the connections it accepts and keeps the requests it read."""

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any

import pytest

from gateway.upstream import UpstreamError, UpstreamPool, UpstreamResponse, UpstreamTimeout
from tests.loops import run_on_own_loop

READ_TIMEOUT = 2.0

Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server on a loopback port handing each connection to ``handler``; it counts the
    connections accepted and open at once, and keeps each request ``read_request`` read."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.accepts = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next request, head and body (of its ``Content-Length``); None at the end."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepts += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self._writers.add(writer)
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()


def answer(body: bytes = b"ok", *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def request_line(request: bytes) -> bytes:
    return request.split(b"\r\n", 1)[0]


def head_lines(request: bytes) -> list[bytes]:
    return request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


async def keep_alive(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    while await server.read_request(reader) is not None:
        writer.write(answer(b"ok"))
        await writer.drain()


async def answer_then_close(
    server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
):
    await server.read_request(reader)
    writer.write(answer(b"ok"))
    await writer.drain()


async def drop_the_second_request(
    server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
):
    await server.read_request(reader)
    writer.write(answer(b"ok"))
    await writer.drain()
    await server.read_request(reader)


@contextlib.asynccontextmanager
async def serving(
    handler: Handler, *, max_connections: int = 10
) -> AsyncIterator[tuple[RawServer, UpstreamPool]]:
    server = RawServer(handler)
    await server.start()
    pool = UpstreamPool(max_connections=max_connections)
    try:
        yield server, pool
    finally:
        await pool.aclose()
        await server.stop()


async def call(
    pool: UpstreamPool,
    url: str,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    body: AsyncIterator[bytes] | None = None,
    content_length: int | None = None,
    read_timeout: float = READ_TIMEOUT,
) -> tuple[UpstreamResponse, bytes]:
    """One request, its answer's body read whole."""
    response = await pool.request(
        method,
        url,
        path,
        headers=list(headers),
        body=body,
        content_length=content_length,
        read_timeout=read_timeout,
    )
    return response, b"".join([chunk async for chunk in response.body()])


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.01)


def run(scenario: Coroutine[Any, Any, None]) -> None:
    run_on_own_loop(asyncio.wait_for(scenario, timeout=10))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_kept_connection_is_reused_for_the_next_calls():
    async def scenario():
        async with serving(keep_alive) as (server, pool):
            for _ in range(3):
                response, body = await call(pool, server.url)
                assert (response.status, body) == (200, b"ok")

            assert server.accepts == 1
            assert len(server.requests) == 3

    run(scenario())


def test_a_kept_connection_the_server_closed_is_dropped_and_the_next_call_connects_anew():
    async def scenario():
        async with serving(answer_then_close) as (server, pool):
            await call(pool, server.url)
            await until(lambda: not pool._open)

            response, body = await call(
                pool, server.url, method="POST", body=chunks(b"data"), content_length=4
            )

            assert (response.status, body) == (200, b"ok")
            assert server.accepts == 2

    run(scenario())


def test_a_bodiless_get_the_server_dropped_on_a_kept_connection_is_sent_again_on_a_new_one():
    async def scenario():
        async with serving(drop_the_second_request) as (server, pool):
            await call(pool, server.url, "/first")

            response, body = await call(pool, server.url, "/second")

            assert (response.status, body) == (200, b"ok")
            assert server.accepts == 2
            assert [request_line(r) for r in server.requests] == [
                b"GET /first HTTP/1.1",
                b"GET /second HTTP/1.1",
                b"GET /second HTTP/1.1",
            ]

    run(scenario())


def test_a_post_the_server_dropped_on_a_kept_connection_is_not_sent_again():
    async def scenario():
        async with serving(drop_the_second_request) as (server, pool):
            await call(pool, server.url, "/first")

            with pytest.raises(UpstreamError):
                await call(
                    pool,
                    server.url,
                    "/orders",
                    method="POST",
                    body=chunks(b'{"buy": 1}'),
                    content_length=10,
                )

            posts = [r for r in server.requests if r.startswith(b"POST")]
            assert len(posts) == 1
            assert posts[0].endswith(b'\r\n\r\n{"buy": 1}')
            assert server.accepts == 1
            assert not pool._open

    run(scenario())


def test_an_answer_with_connection_close_does_not_leave_its_connection_for_reuse():
    async def server_keeping_it_open(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        while await server.read_request(reader) is not None:
            writer.write(answer(b"ok", "Connection: close"))
            await writer.drain()

    async def scenario():
        async with serving(server_keeping_it_open) as (server, pool):
            await call(pool, server.url)
            assert not pool._open

            response, body = await call(pool, server.url)

            assert (response.status, body) == (200, b"ok")
            assert server.accepts == 2

    run(scenario())


def test_a_chunked_answer_is_read_as_its_body_and_its_connection_reused():
    async def chunked(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(b"6\r\n world\r\n0\r\n\r\n")
            await writer.drain()

    async def scenario():
        async with serving(chunked) as (server, pool):
            _, first = await call(pool, server.url)
            _, second = await call(pool, server.url)

            assert first == second == b"hello world"
            assert server.accepts == 1

    run(scenario())


def test_an_answer_of_no_declared_length_is_read_until_the_server_closes():
    async def until_close(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"second part")
        await writer.drain()

    async def scenario():
        async with serving(until_close) as (server, pool):
            response, body = await call(pool, server.url)

            assert response.status == 200
            assert body == b"first part, second part"
            assert not pool._open

    run(scenario())


def test_a_head_answer_with_a_length_ends_at_its_headers_and_its_connection_serves_a_get():
    async def head_and_get(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        while (request := await server.read_request(reader)) is not None:
            if request.startswith(b"HEAD "):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            else:
                writer.write(answer(b"x" * 100))
            await writer.drain()

    async def scenario():
        async with serving(head_and_get) as (server, pool):
            response, body = await asyncio.wait_for(
                call(pool, server.url, method="HEAD"), timeout=1
            )
            assert (response.status, response.header("content-length"), body) == (
                200,
                "100",
                b"",
            )

            response, body = await call(pool, server.url)

            assert (response.status, body) == (200, b"x" * 100)
            assert server.accepts == 1

    run(scenario())


def test_an_interim_100_continue_gives_way_to_the_final_answer():
    async def continue_first(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(answer(b"made", "X-Final: yes", status="201 Created"))
            await writer.drain()

    async def scenario():
        async with serving(continue_first) as (server, pool):
            response, body = await call(pool, server.url)

            assert response.status == 201
            assert response.headers == [("Content-Length", "4"), ("X-Final", "yes")]
            assert body == b"made"

            await call(pool, server.url)
            assert server.accepts == 1

    run(scenario())


def test_a_large_answer_read_slowly_is_not_buffered_whole_and_arrives_in_order():
    sent = os.urandom(8 * 1024 * 1024)

    async def large(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await server.read_request(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(sent)}\r\n\r\n".encode())
        for start in range(0, len(sent), 64 * 1024):
            writer.write(sent[start : start + 64 * 1024])
            await writer.drain()

    async def scenario():
        async with serving(large) as (server, pool):
            response = await pool.request(
                "GET", server.url, "/", headers=[], read_timeout=READ_TIMEOUT
            )
            exchange = response._exchange
            received = bytearray()
            most_buffered = 0
            async for chunk in response.body():
                received += chunk
                await asyncio.sleep(0.1 if len(received) == len(chunk) else 0.002)
                most_buffered = max(most_buffered, exchange._buffered)

            assert most_buffered < 1024 * 1024
            assert received == sent

    run(scenario())


def test_a_request_body_is_streamed_after_its_head_with_its_declared_length():
    first_arrived = asyncio.Event()
    parts = (b"first chunk;", b"second chunk;", b"last")
    length = sum(map(len, parts))

    async def upload(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        head = await reader.readuntil(b"\r\n\r\n")
        first = await reader.readexactly(len(parts[0]))
        first_arrived.set()
        rest = await reader.readexactly(length - len(first))
        server.requests.append(head + first + rest)
        writer.write(answer(b"stored"))
        await writer.drain()

    async def body() -> AsyncIterator[bytes]:
        yield parts[0]
        await asyncio.wait_for(first_arrived.wait(), timeout=2)
        for part in parts[1:]:
            yield part

    async def scenario():
        async with serving(upload) as (server, pool):
            _, answered = await call(
                pool, server.url, "/upload", method="POST", body=body(), content_length=length
            )

            assert answered == b"stored"
            [request] = server.requests
            lines = head_lines(request)
            assert lines[0] == b"POST /upload HTTP/1.1"
            assert f"Host: 127.0.0.1:{server.port}".encode() in lines
            assert f"Content-Length: {length}".encode() in lines
            assert request.split(b"\r\n\r\n", 1)[1] == b"".join(parts)

    run(scenario())


def test_a_query_of_latin_1_characters_and_spaces_is_sent_as_its_bytes_percent_encoded():
    async def scenario():
        async with serving(keep_alive) as (server, pool):
            await call(pool, server.url, "/search?q=caf\xe9 x&n=\xff")

            assert request_line(server.requests[0]) == b"GET /search?q=caf%E9%20x&n=%FF HTTP/1.1"

    run(scenario())


def test_a_base_url_path_prefixes_the_request_target():
    async def scenario():
        async with serving(keep_alive) as (server, pool):
            await call(pool, f"{server.url}/api/", "/items?page=2")

            assert request_line(server.requests[0]) == b"GET /api/items?page=2 HTTP/1.1"

    run(scenario())


def test_a_line_break_in_a_header_value_cannot_add_a_header():
    async def scenario():
        async with serving(keep_alive) as (server, pool):
            await call(pool, server.url, headers=[("X-Note", "a\r\nInjected: yes")])

            lines = head_lines(server.requests[0])
            assert [line for line in lines if line.lower().startswith(b"x-note:")] == [
                b"X-Note: a  Injected: yes"
            ]
            assert not [line for line in lines if line.lower().startswith(b"injected")]

    run(scenario())


def test_a_refused_connection_is_an_upstream_error():
    async def scenario():
        pool = UpstreamPool(max_connections=2)

        with pytest.raises(UpstreamError, match="could not connect"):
            await call(pool, f"http://127.0.0.1:{closed_port()}")

        assert not pool._open

    run(scenario())


def test_a_malformed_answer_is_an_upstream_error():
    async def garbage(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        await server.read_request(reader)
        writer.write(b"garbage\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def scenario():
        async with serving(garbage) as (server, pool):
            with pytest.raises(UpstreamError, match="malformed"):
                await call(pool, server.url)

            assert not pool._open
            assert server.accepts == 1

    run(scenario())


def test_an_upstream_stalling_mid_body_times_out_after_the_read_timeout():
    async def stall(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        await reader.read()

    async def scenario():
        async with serving(stall) as (server, pool):
            response = await pool.request("GET", server.url, "/", headers=[], read_timeout=0.3)
            received = []
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout):
                async for chunk in response.body():
                    received.append(chunk)
            waited = time.monotonic() - started
            response.close()

            assert received == [b"abc"]
            assert 0.25 <= waited < 2
            assert not pool._open

    run(scenario())


def test_an_upstream_closing_mid_body_is_an_upstream_error_while_reading():
    async def cut_short(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    async def scenario():
        async with serving(cut_short) as (server, pool):
            response = await pool.request(
                "GET", server.url, "/", headers=[], read_timeout=READ_TIMEOUT
            )
            received = []
            with pytest.raises(UpstreamError) as raised:
                async for chunk in response.body():
                    received.append(chunk)
            response.close()

            assert not isinstance(raised.value, UpstreamTimeout)
            assert received == [b"abc"]
            assert not pool._open

    run(scenario())


def test_no_more_connections_than_the_limit_are_opened_and_every_call_completes():
    async def slow(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        while await server.read_request(reader) is not None:
            await asyncio.sleep(0.3)
            writer.write(answer(b"ok"))
            await writer.drain()

    async def scenario():
        async with serving(slow, max_connections=2) as (server, pool):
            started = time.monotonic()
            answers = await asyncio.gather(*(call(pool, server.url) for _ in range(3)))
            took = time.monotonic() - started

            assert [body for _, body in answers] == [b"ok"] * 3
            assert server.most_open == 2
            assert server.accepts == 2
            assert took >= 0.55

    run(scenario())


def test_a_response_closed_unread_closes_its_connection_and_one_read_whole_is_kept():
    async def slow_body(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"defghij")
            await writer.drain()

    async def scenario():
        async with serving(slow_body) as (server, pool):
            _, body = await call(pool, server.url)
            assert body == b"abcdefghij"
            assert len(pool._open) == 1

            unread = await pool.request(
                "GET", server.url, "/", headers=[], read_timeout=READ_TIMEOUT
            )
            assert server.accepts == 1
            unread.close()
            assert not pool._open

            _, body = await call(pool, server.url)
            assert body == b"abcdefghij"
            assert server.accepts == 2

    run(scenario())


def test_repeated_set_cookie_headers_are_all_kept_in_order_as_sent():
    async def cookies(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        await server.read_request(reader)
        writer.write(answer(b"ok", "Set-Cookie: a=1; Path=/", "set-cookie: b=2; HttpOnly"))
        await writer.drain()

    async def scenario():
        async with serving(cookies) as (server, pool):
            response, _ = await call(pool, server.url)

            assert [(n, v) for n, v in response.headers if n.lower() == "set-cookie"] == [
                ("Set-Cookie", "a=1; Path=/"),
                ("set-cookie", "b=2; HttpOnly"),
            ]
            assert response.header("set-cookie") == "a=1; Path=/"

    run(scenario())


def test_a_get_sent_again_goes_on_a_new_connection_not_another_kept_one():
    async def scenario():
        async with serving(drop_the_second_request) as (server, pool):
            await asyncio.gather(call(pool, server.url, "/a"), call(pool, server.url, "/b"))
            assert server.accepts == 2

            response, body = await call(pool, server.url, "/again")

            assert (response.status, body) == (200, b"ok")
            assert server.accepts == 3
            assert [request_line(r) for r in server.requests[2:]] == [
                b"GET /again HTTP/1.1",
                b"GET /again HTTP/1.1",
            ]

    run(scenario())


def test_a_call_cancelled_as_a_connection_is_freed_for_it_passes_the_connection_on():
    async def scenario():
        async with serving(keep_alive, max_connections=1) as (server, pool):
            holding = await pool.request(
                "GET", server.url, "/", headers=[], read_timeout=READ_TIMEOUT
            )
            leaving = asyncio.create_task(call(pool, server.url))
            staying = asyncio.create_task(call(pool, server.url))
            await until(lambda: len(pool._waiting) == 2)

            async for _ in holding.body():
                pass
            leaving.cancel()

            response, body = await asyncio.wait_for(staying, timeout=1)
            assert (response.status, body) == (200, b"ok")
            assert leaving.cancelled()
            assert server.accepts == 1

    run(scenario())


def test_a_second_answer_sent_with_the_first_is_ignored_and_its_connection_not_kept():
    async def two_answers(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        while await server.read_request(reader) is not None:
            writer.write(answer(b"first") + answer(b"forged", "X-Forged: yes"))
            await writer.drain()

    async def scenario():
        async with serving(two_answers) as (server, pool):
            response, body = await call(pool, server.url)
            assert body == b"first"
            assert response.header("x-forged") is None
            assert not pool._open

            _, body = await call(pool, server.url)
            assert body == b"first"
            assert server.accepts == 2

    run(scenario())
