"""Answers stream back as the upstream sends them: a server-sent event reaches the client
before the upstream has finished, and a client that leaves mid-stream is billed for a stream
that began with a billable status."""

import http.client
import socket
import time

import httpx

from tests.factories import EndpointFactory
from tests.gateway.servers import usage_of


def test_first_event_arrives_before_the_upstream_finishes(
    meterdesk, upstream, upstream_app, api_key
):
    EndpointFactory(
        upstream=upstream, operation_id="stream", public_path="/stream", cost=2, max_cost=2
    )
    headers = {"Authorization": f"Bearer {api_key.plaintext}"}

    with httpx.stream("GET", f"{meterdesk.url}/v1/stream", headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-ratelimit-remaining"]
        chunks = response.iter_raw()
        first = next(chunks)
        assert first == b"data: first\n\n"
        # The upstream is still holding the stream open, waiting for the test.
        assert not upstream_app.finished_stream.is_set()
        upstream_app.release.set()
        rest = b"".join(chunks)

    assert rest == b"data: last\n\n"
    assert usage_of(api_key.account_id, "catalog/stream") == (2, 1)


def test_client_leaving_mid_stream_is_billed_for_the_started_stream(
    meterdesk, upstream, upstream_app, api_key
):
    EndpointFactory(
        upstream=upstream, operation_id="stream", public_path="/stream", cost=2, max_cost=2
    )
    headers = {"Authorization": f"Bearer {api_key.plaintext}"}

    with httpx.stream("GET", f"{meterdesk.url}/v1/stream", headers=headers, timeout=10) as response:
        assert next(response.iter_raw()) == b"data: first\n\n"
    # Closed before the end: the status (200) and units were settled when the stream began.
    upstream_app.release.set()

    assert upstream_app.finished_stream.wait(5)
    assert usage_of(api_key.account_id, "catalog/stream") == (2, 1)


def test_client_leaving_before_the_upstream_answers_gets_its_units_back(
    meterdesk, upstream, upstream_app, api_key
):
    EndpointFactory(
        upstream=upstream, operation_id="slow", public_path="/slow/{seconds}", cost=3, max_cost=3
    )
    connection = http.client.HTTPConnection("127.0.0.1", meterdesk.port, timeout=30)
    connection.request("GET", "/v1/slow/10", headers={"X-API-Key": api_key.plaintext})
    deadline = time.monotonic() + 20
    while not upstream_app.received and time.monotonic() < deadline:
        time.sleep(0.02)
    # Admitted (3 units reserved) and waiting for the upstream: now the client leaves.
    assert usage_of(api_key.account_id, "catalog/slow")[0] == 3
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()

    deadline = time.monotonic() + 10
    while usage_of(api_key.account_id, "catalog/slow")[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert usage_of(api_key.account_id, "catalog/slow")[0] == 0
