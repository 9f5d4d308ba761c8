"""`make run`'s demo: the demo upstream (gateway/demo_upstream.py) imported from its OpenAPI
document and sold through the gateway; it refuses calls Meterdesk did not sign."""

from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from gateway.demo_upstream import DemoUpstream
from gateway.models import Upstream
from portal.management.commands.serve import DEMO_OPENAPI
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory
from tests.gateway.servers import AsgiServer, usage_of


@pytest.fixture
def demo(meterdesk):
    """The demo upstream on a loopback port, imported as `make run` imports it."""
    app = DemoUpstream(secret="not yet")
    server = AsgiServer(app).start()
    call_command("import_openapi", str(DEMO_OPENAPI), "--upstream", server.url, "--name", "demo")
    app.secret = Upstream.objects.get(name="demo").signing_secret
    yield server
    server.stop()


@pytest.fixture
def pro_key():
    tier = TierFactory(slug="pro", scopes=["basic", "compute"], rate_limit_per_minute=600)
    return ApiKeyFactory(account=AccountFactory(tier=tier))


def test_the_demo_document_is_the_one_make_run_imports():
    assert Path(DEMO_OPENAPI).is_file()


def test_demo_operations_are_sold_through_the_gateway(meterdesk, demo, pro_key):
    headers = {"X-API-Key": pro_key.plaintext}

    echo = httpx.get(f"{meterdesk.url}/v1/echo/meterdesk", headers=headers, timeout=30)
    words = httpx.post(
        f"{meterdesk.url}/v1/words",
        headers={**headers, "Content-Type": "text/plain"},
        content=" ".join(["word"] * 250),
        timeout=30,
    )

    assert echo.status_code == 200
    assert echo.json() == {"word": "meterdesk", "length": 9}
    assert words.json() == {"words": 250, "units": 3}
    assert usage_of(pro_key.account_id, "demo/echo") == (1, 1)
    # Variable cost: 3 units reported of the 20 reserved.
    assert usage_of(pro_key.account_id, "demo/countWords") == (3, 1)


def test_demo_ticks_stream_as_events(meterdesk, demo, pro_key):
    with httpx.stream(
        "GET",
        f"{meterdesk.url}/v1/ticks",
        params={"count": 3},
        headers={"X-API-Key": pro_key.plaintext},
        timeout=10,
    ) as response:
        events = [line for line in response.iter_lines() if line.startswith("data:")]

    assert response.headers["content-type"] == "text/event-stream"
    assert events == [f'data: {{"tick": {n}, "of": 3}}' for n in (1, 2, 3)]
    assert usage_of(pro_key.account_id, "demo/ticks") == (2, 1)


def test_demo_upstream_refuses_calls_not_signed_by_meterdesk(demo):
    direct = httpx.get(f"{demo.url}/echo/hi")
    forged = httpx.get(
        f"{demo.url}/echo/hi",
        headers={"Meterdesk-Timestamp": "1", "Meterdesk-Signature": "0" * 64},
    )

    assert direct.status_code == forged.status_code == 401
