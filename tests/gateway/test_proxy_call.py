"""A developer's call through the gateway reaches the upstream and comes back, metered."""

from tests.factories import EndpointFactory
from tests.gateway.servers import usage_of


def test_call_is_proxied_with_the_rate_limit_headers_and_counted(
    caller, upstream, upstream_app, api_key
):
    EndpointFactory(
        upstream=upstream, operation_id="echo", public_path="/echo/{word}", cost=3, max_cost=3
    )

    response = caller.get("/v1/echo/hello", params={"lang": "en"})

    assert response.status_code == 200
    assert response.json() == {"word": "hello", "query": {"lang": ["en"]}}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-ratelimit-limit"]
    assert "ratelimit" in response.headers and "ratelimit-policy" in response.headers
    assert len(response.headers["meterdesk-request-id"]) == 32
    assert [r.path_and_query for r in upstream_app.received] == ["/echo/hello?lang=en"]
    assert usage_of(api_key.account_id, "catalog/echo") == (3, 1)


def test_upstream_gets_who_is_calling_but_never_the_key_or_cookies(
    meterdesk, upstream, upstream_app, api_key
):
    import httpx

    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")

    for headers in (
        {"Authorization": f"Bearer {api_key.plaintext}"},
        {"X-API-Key": api_key.plaintext},
    ):
        httpx.get(
            f"{meterdesk.url}/v1/echo/hi",
            headers={
                **headers,
                "Cookie": "sessionid=portal-session",
                "Meterdesk-Account": "999",
                "X-Trace": "kept",
            },
        ).raise_for_status()

    for received in upstream_app.received:
        names = set(received.headers)
        assert "authorization" not in names and "x-api-key" not in names
        assert "cookie" not in names
        assert api_key.plaintext not in repr(received.headers)
        assert received.header("x-trace") == "kept"
        assert received.headers["meterdesk-account"] == [str(api_key.account_id)]
        assert received.header("meterdesk-key") == api_key.prefix
        assert received.header("meterdesk-tier") == "builder"
        assert len(received.header("meterdesk-request-id") or "") == 32
        assert received.header("meterdesk-signature")


def test_request_body_reaches_the_upstream(caller, upstream, upstream_app):
    EndpointFactory(upstream=upstream, operation_id="upload", method="POST", public_path="/upload")

    body = b"x" * 300_000
    response = caller.post("/v1/upload", content=body, headers={"Content-Type": "text/plain"})

    assert response.status_code == 200
    assert response.json() == {"length": 300_000}
    assert upstream_app.received[0].body == body
    assert upstream_app.received[0].header("content-type") == "text/plain"
