"""Headers through the gateway: hop-by-hop ones are dropped both ways, the upstream's own
rate-limit headers give way to Meterdesk's, everything else passes."""

import http.client

from tests.factories import EndpointFactory


def test_hop_by_hop_headers_are_dropped_from_the_answer(caller, upstream):
    EndpointFactory(upstream=upstream, operation_id="headers", public_path="/headers")

    response = caller.get("/v1/headers")

    assert response.status_code == 200
    assert response.headers["x-upstream"] == "yes"
    # Named by the upstream's Connection header: meant for that hop only.
    assert "x-hop" not in response.headers
    assert "keep-alive" not in response.headers
    assert response.headers.get("connection", "keep-alive") == "keep-alive"
    # One set of rate-limit headers: Meterdesk's, describing this call.
    assert response.headers["ratelimit"] != "upstream's own"
    assert response.headers["set-cookie"].startswith("flavour=oat")
    # Date and Server are this hop's, once each.
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) == 1


def test_hop_by_hop_headers_are_dropped_from_the_request(
    meterdesk, upstream, upstream_app, api_key
):
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")
    connection = http.client.HTTPConnection("127.0.0.1", meterdesk.port, timeout=10)
    connection.request(
        "GET",
        "/v1/echo/hi",
        headers={
            "X-API-Key": api_key.plaintext,
            "Connection": "keep-alive, X-Private",
            "X-Private": "for this hop",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "Accept": "application/json",
        },
    )
    assert connection.getresponse().status == 200
    connection.close()

    received = upstream_app.received[0]
    for name in ("x-private", "keep-alive", "te", "proxy-authorization"):
        assert name not in received.headers
    assert received.header("accept") == "application/json"


def test_body_over_the_upstreams_limit_is_413_and_never_sent(
    caller, upstream, upstream_app, api_key
):
    from tests.gateway.servers import usage_of

    upstream.max_request_bytes = 1000
    upstream.save()
    EndpointFactory(upstream=upstream, operation_id="upload", method="POST", public_path="/upload")

    too_big = caller.post("/v1/upload", content=b"x" * 1001)
    fits = caller.post("/v1/upload", content=b"x" * 1000)

    assert too_big.status_code == 413
    assert too_big.json()["limit"] == 1000
    assert too_big.json()["type"].endswith("/problems/payload-too-large/")
    assert fits.json() == {"length": 1000}
    assert len(upstream_app.received) == 1
    assert usage_of(api_key.account_id, "catalog/upload") == (1, 1)


def test_chunked_body_over_the_limit_is_413(caller, upstream, upstream_app):
    upstream.max_request_bytes = 1000
    upstream.save()
    EndpointFactory(upstream=upstream, operation_id="upload", method="POST", public_path="/upload")

    def chunks():
        for _ in range(3):
            yield b"y" * 500

    response = caller.post("/v1/upload", content=chunks())

    assert response.status_code == 413
    assert upstream_app.received == []
