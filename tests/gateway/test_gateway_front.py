"""gateway.asgi.GatewayFront: the ASGI app production serves (config/asgi.py) answers the
gateway's routes itself, in front of Django's handler, and must leave the request as Django
would have: the Host checked, the security headers on the answer, Django's 404 for a path no
endpoint answers, a body passed on intact."""

import socket

import httpx

from tests.factories import EndpointFactory
from tests.gateway.servers import usage_of


def test_a_proxied_answer_carries_the_headers_djangos_middleware_adds(caller, upstream):
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")

    proxied = caller.get("/v1/echo/hi")
    built_in = caller.get("/v1/me")

    assert proxied.status_code == 200 and built_in.status_code == 200
    for name in ("x-content-type-options", "referrer-policy", "x-frame-options"):
        assert proxied.headers[name] == built_in.headers[name], name
    assert proxied.headers["x-content-type-options"] == "nosniff"


def test_a_host_django_would_refuse_is_refused_before_the_upstream(
    meterdesk, upstream, upstream_app, api_key
):
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")

    with socket.create_connection(("127.0.0.1", meterdesk.port), timeout=10) as sock:
        sock.sendall(
            b"GET /v1/echo/hi HTTP/1.1\r\nHost: evil.example\r\n"
            + f"Authorization: Bearer {api_key.plaintext}\r\n".encode()
            + b"Connection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 400")
    assert upstream_app.received == []
    assert usage_of(api_key.account_id, "catalog/echo") == (0, 0)


def test_a_post_to_a_path_no_endpoint_answers_gets_the_apis_404(caller, upstream):
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")

    response = caller.post("/v1/nothing/here", content=b'{"a": 1}')

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["instance"] == "/v1/nothing/here"


def test_a_large_body_is_passed_on_intact(caller, upstream, upstream_app, api_key):
    upstream.max_request_bytes = 4 * 1024 * 1024
    upstream.save()
    EndpointFactory(upstream=upstream, operation_id="upload", method="POST", public_path="/upload")
    body = bytes(range(256)) * 8192  # 2 MiB, in many messages on the way in

    response = caller.post("/v1/upload", content=body)

    assert response.json() == {"length": len(body)}
    assert upstream_app.received[0].body == body
    assert usage_of(api_key.account_id, "catalog/upload") == (1, 1)


def test_a_chunked_body_within_the_limit_arrives_with_its_length(caller, upstream, upstream_app):
    EndpointFactory(upstream=upstream, operation_id="upload", method="POST", public_path="/upload")

    def chunks():
        for _ in range(4):
            yield b"z" * 1000

    response = caller.post("/v1/upload", content=chunks())

    assert response.json() == {"length": 4000}
    assert upstream_app.received[0].header("content-length") == "4000"


def test_pages_and_built_in_endpoints_are_djangos(meterdesk, api_key):
    page = httpx.get(f"{meterdesk.url}/healthz", timeout=20)
    me = httpx.get(f"{meterdesk.url}/v1/me", headers={"X-API-Key": api_key.plaintext}, timeout=20)

    assert page.headers["content-type"] == "application/json" and "checks" in page.json()
    assert me.status_code == 200


def test_an_upstreams_cookie_goes_to_its_caller_and_is_never_replayed_to_another(
    meterdesk, upstream, upstream_app, tier
):
    """The proxy keeps no cookie jar (gateway/upstream.py): one developer's Set-Cookie must not
    ride along on the next developer's call to the same upstream."""
    from tests.factories import AccountFactory, ApiKeyFactory

    EndpointFactory(upstream=upstream, operation_id="headers", public_path="/headers")
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")
    first, second = (ApiKeyFactory(account=AccountFactory(tier=tier)) for _ in range(2))

    given = httpx.get(
        f"{meterdesk.url}/v1/headers", headers={"X-API-Key": first.plaintext}, timeout=20
    )
    httpx.get(
        f"{meterdesk.url}/v1/echo/next", headers={"X-API-Key": second.plaintext}, timeout=20
    ).raise_for_status()

    assert given.headers["set-cookie"].startswith("flavour=oat")
    assert "cookie" not in upstream_app.received[-1].headers


def test_the_upstream_learns_who_forwarded_the_call(meterdesk, upstream, upstream_app, api_key):
    """As nginx's $proxy_add_x_forwarded_for: the peer's address appended to the chain the
    call came with; X-Forwarded-Proto kept when a proxy in front set it, else the scheme. The
    test's server trusts its loopback peer as a proxy (uvicorn's default --forwarded-allow-ips,
    as behind nginx on the same host), so it reports the chain's last entry as the peer, which
    is then not appended twice."""
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")
    url = f"{meterdesk.url}/v1/echo/hi"
    key = {"X-API-Key": api_key.plaintext}

    httpx.get(url, headers=key, timeout=20).raise_for_status()
    httpx.get(
        url,
        headers={**key, "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        timeout=20,
    ).raise_for_status()

    direct, through_a_proxy = upstream_app.received
    assert direct.headers["x-forwarded-for"] == ["127.0.0.1"]
    assert direct.headers["x-forwarded-proto"] == ["http"]
    assert through_a_proxy.headers["x-forwarded-for"] == ["203.0.113.9"]
    assert through_a_proxy.headers["x-forwarded-proto"] == ["https"]


def test_the_fronts_database_reads_leave_no_connection_open(caller, upstream, monkeypatch):
    """Outside Django's handler no request signal closes connections: each read the front
    makes (a key the cache does not hold, the route table) closes its own under
    CONN_MAX_AGE=0, as config.asgi runs (gateway/database.py)."""
    from asgiref.sync import SyncToAsync
    from django.db import connection

    from portal.keys.cache import key_cache
    from tests.gateway.servers import close_server_connections

    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    # The warm-up call opened one under the suite's CONN_MAX_AGE: start from none.
    close_server_connections()
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")
    key_cache.clear()

    caller.get("/v1/echo/hi").raise_for_status()

    def reads_thread_connection_open() -> bool:
        return connection.connection is not None

    executor = SyncToAsync.single_thread_executor
    assert executor.submit(reads_thread_connection_open).result(timeout=10) is False
