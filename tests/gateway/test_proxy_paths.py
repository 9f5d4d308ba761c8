"""Path parameters cannot leave the upstream path the operator declared: refused with a 400
problem, nothing counted, nothing sent upstream."""

import http.client
import json

import pytest

from tests.factories import EndpointFactory
from tests.gateway.servers import usage_of


def raw_get(server, path: str, key: str) -> tuple[int, dict]:
    """A GET with the path exactly as written: httpx would resolve '..' before sending."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    body = json.loads(response.read() or b"{}")
    connection.close()
    return response.status, body


@pytest.mark.parametrize(
    "path",
    [
        "/v1/files/..",
        "/v1/files/%2e%2e",
        "/v1/files/.",
        "/v1/files/a%2Fb",
        "/v1/files/a%2fb",
        "/v1/files/a%5Cb",
        "/v1/files/a\\b",
        "/v1/files/..%2Fadmin",
        "/v1/files/http:%2F%2Fevil.example",
        "/v1/files/http:evil.example",
        "/v1/files//",
        "/v1//files/x",
        "/v1/files/../../admin",
    ],
)
def test_escaping_path_is_refused_and_not_counted(meterdesk, upstream, upstream_app, api_key, path):
    EndpointFactory(
        upstream=upstream,
        operation_id="file",
        public_path="/files/{name}",
        upstream_path="/echo/{name}",
    )

    status, body = raw_get(meterdesk, path, api_key.plaintext)

    assert status == 400, body
    assert body["type"].endswith("/problems/invalid-request/")
    assert body["detail"]
    assert upstream_app.received == []
    assert usage_of(api_key.account_id, "catalog/file") == (0, 0)


def test_plain_values_are_passed_encoded_as_one_segment(meterdesk, upstream, upstream_app, api_key):
    EndpointFactory(
        upstream=upstream,
        operation_id="file",
        public_path="/files/{name}",
        upstream_path="/echo/{name}",
    )

    status, body = raw_get(meterdesk, "/v1/files/caf%C3%A9%20au%20lait", api_key.plaintext)

    assert status == 200
    assert body["word"] == "café au lait"
    assert upstream_app.received[0].path_and_query == "/echo/caf%C3%A9%20au%20lait"
