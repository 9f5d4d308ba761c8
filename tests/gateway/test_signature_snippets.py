"""The verification snippets docs/gateway.md shows, run against real proxied calls: the Python
one inside the test upstream, the JavaScript one with node."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.services import upstream_signing_secret_rotate
from tests.factories import EndpointFactory
from tests.gateway.servers import Received

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"


def snippet(name: str) -> str:
    """The fenced code block right after ``<!-- snippet: name ... -->`` in docs/gateway.md."""
    found = re.search(
        rf"<!-- snippet: {re.escape(name)}\b.*?-->\s*```\w+\n(.*?)```", DOC.read_text(), re.S
    )
    assert found, f"docs/gateway.md has no snippet {name}"
    return found.group(1)


def python_verifier():
    namespace: dict = {}
    exec(snippet("verify-python"), namespace)  # noqa: S102 - the documentation's own code
    return namespace["meterdesk_verified"]


def flat(received: Received) -> dict[str, str]:
    return {name: values[0] for name, values in received.headers.items()}


def test_python_snippet_verifies_a_proxied_call_in_the_upstream(
    caller, upstream, upstream_app, api_key
):
    verified = python_verifier()
    secret = upstream.signing_secret
    upstream_app.verifier = lambda r: verified(secret, r.method, r.path_and_query, flat(r))
    EndpointFactory(
        upstream=upstream, operation_id="verified", method="POST", public_path="/verified"
    )

    response = caller.post("/v1/verified", params={"q": "a b", "page": "2"}, content=b"{}")

    assert response.status_code == 200
    assert response.json() == {"verified": True}
    received = upstream_app.received[0]
    assert received.path_and_query == "/verified?q=a+b&page=2"
    # The same headers fail with another secret, another path or a changed identity.
    assert not verified("0" * 64, received.method, received.path_and_query, flat(received))
    assert not verified(secret, received.method, "/verified?q=a+b&page=3", flat(received))
    forged = {**flat(received), "meterdesk-account": str(api_key.account_id + 1)}
    assert not verified(secret, received.method, received.path_and_query, forged)
    stale = {
        **flat(received),
        "meterdesk-timestamp": str(int(received.header("meterdesk-timestamp")) - 600),
    }
    assert not verified(secret, received.method, received.path_and_query, stale)


def test_a_rotated_secret_fails_the_old_verification(caller, upstream, upstream_app, api_key):
    verified = python_verifier()
    old_secret = upstream.signing_secret
    upstream_app.verifier = lambda r: verified(old_secret, r.method, r.path_and_query, flat(r))
    EndpointFactory(upstream=upstream, operation_id="verified", public_path="/verified")

    upstream_signing_secret_rotate(upstream=upstream, actor=None)
    response = caller.get("/v1/verified")

    # The upstream refuses the call; its 401 is passed back and not billed.
    assert response.status_code == 401
    assert response.json() == {"verified": False}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_snippet_verifies_a_proxied_call(caller, upstream, upstream_app, tmp_path):
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")
    assert caller.get("/v1/echo/caf%C3%A9", params={"x": "1"}).status_code == 200
    received = upstream_app.received[0]
    secret = upstream.signing_secret
    cases = [
        {"secret": secret, "path": received.path_and_query, "headers": flat(received)},
        {"secret": "0" * 64, "path": received.path_and_query, "headers": flat(received)},
        {"secret": secret, "path": "/echo/cafe?x=1", "headers": flat(received)},
        {
            "secret": secret,
            "path": received.path_and_query,
            "headers": {**flat(received), "meterdesk-tier": "enterprise"},
        },
    ]
    script = tmp_path / "verify.js"
    script.write_text(
        snippet("verify-js")
        + "\nconst cases = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));\n"
        + "console.log(JSON.stringify(cases.map((c) => "
        + "meterdeskVerified(c.secret, 'GET', c.path, c.headers))));\n"
    )

    result = subprocess.run(
        [shutil.which("node") or "node", str(script)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    assert received.path_and_query == "/echo/caf%C3%A9?x=1"
    assert json.loads(result.stdout) == [True, False, False, False]
