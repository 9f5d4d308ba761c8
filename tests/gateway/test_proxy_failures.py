"""Upstream failures: no connection → 502, no answer in time → 504, both problem+json with
every unit given back; an upstream 5xx passes through unbilled."""

import socket

import httpx

from tests.factories import EndpointFactory, UpstreamFactory
from tests.gateway.servers import usage_of


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_upstream_is_502_and_not_billed(caller, api_key):
    down = UpstreamFactory(name="down", base_url=f"http://127.0.0.1:{closed_port()}")
    EndpointFactory(
        upstream=down, operation_id="echo", public_path="/echo/{word}", cost=5, max_cost=5
    )

    response = caller.get("/v1/echo/hi")

    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/problems/upstream-unreachable/")
    assert response.headers["x-ratelimit-remaining"]
    assert usage_of(api_key.account_id, "down/echo")[0] == 0


def test_slow_upstream_is_504_after_the_endpoint_timeout_and_not_billed(caller, upstream, api_key):
    EndpointFactory(
        upstream=upstream,
        operation_id="slow",
        public_path="/slow/{seconds}",
        cost=5,
        max_cost=5,
        timeout_seconds=0.3,
    )

    response = caller.get("/v1/slow/2")

    assert response.status_code == 504
    assert response.json()["type"].endswith("/problems/upstream-timeout/")
    assert usage_of(api_key.account_id, "catalog/slow")[0] == 0


def test_upstream_5xx_passes_through_unbilled_and_4xx_too(caller, upstream, api_key):
    EndpointFactory(
        upstream=upstream, operation_id="status", public_path="/status/{code}", cost=5, max_cost=5
    )

    failed = caller.get("/v1/status/503")
    refused = caller.get("/v1/status/422")
    served = caller.get("/v1/status/201")

    assert (failed.status_code, failed.json()) == (503, {"status": 503})
    assert refused.status_code == 422
    assert served.status_code == 201
    # Only the 201 is billable (the default: 2xx).
    assert usage_of(api_key.account_id, "catalog/status")[0] == 5


def test_billable_statuses_are_the_endpoints(caller, upstream, api_key):
    EndpointFactory(
        upstream=upstream,
        operation_id="status",
        public_path="/status/{code}",
        cost=2,
        max_cost=2,
        billable_statuses=[200, 404],
    )

    caller.get("/v1/status/404")
    caller.get("/v1/status/201")

    assert usage_of(api_key.account_id, "catalog/status")[0] == 2


def test_gateway_gives_the_units_back_for_a_connection_refused_mid_flight(meterdesk, api_key):
    """The 502 is the gateway's own answer: it carries the API's problem type URL."""
    down = UpstreamFactory(name="gone", base_url=f"http://127.0.0.1:{closed_port()}")
    EndpointFactory(upstream=down, operation_id="x", public_path="/x")

    response = httpx.get(f"{meterdesk.url}/v1/x", headers={"X-API-Key": api_key.plaintext})

    assert response.status_code == 502
    assert response.json()["instance"] == "/v1/x"
