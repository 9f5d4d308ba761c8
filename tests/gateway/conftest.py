"""Fixtures of the gateway's tests: a real upstream and Meterdesk itself, each served by uvicorn
on a loopback port, and a developer with a key on a tier."""

import httpx
import pytest

from gateway.routes import route_table
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory, UpstreamFactory
from tests.gateway.servers import AsgiServer, TestUpstream, close_server_connections


@pytest.fixture(autouse=True)
def _fresh_routes():
    route_table.invalidate()
    yield
    route_table.invalidate()


@pytest.fixture
def upstream_app() -> TestUpstream:
    return TestUpstream()


@pytest.fixture
def upstream_server(upstream_app):
    server = AsgiServer(upstream_app).start()
    yield server
    upstream_app.release.set()
    server.stop()


@pytest.fixture
def meterdesk(transactional_db):
    """Meterdesk under ASGI (config/asgi.py), as production serves it."""
    from config.asgi import application

    server = AsgiServer(application).start()
    # The first request of a process imports every view (the URLconf): on a loaded machine
    # that takes seconds, which the tests' own calls should not have to wait out.
    httpx.get(f"{server.url}/v1/warm-up", timeout=60)
    yield server
    server.stop()
    close_server_connections()


@pytest.fixture
def upstream(upstream_server):
    return UpstreamFactory(name="catalog", base_url=upstream_server.url)


@pytest.fixture
def tier():
    return TierFactory(
        slug="builder", rate_limit_per_minute=600, included_units=10_000, scopes=["basic"]
    )


@pytest.fixture
def api_key(tier):
    return ApiKeyFactory(account=AccountFactory(tier=tier))


@pytest.fixture
def caller(meterdesk, api_key):
    with httpx.Client(
        base_url=meterdesk.url, headers={"Authorization": f"Bearer {api_key.plaintext}"}, timeout=20
    ) as client:
        yield client
