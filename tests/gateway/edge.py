"""What the verify and settle tests share: an upstream with a service token, one of its
endpoints with a variable cost, a developer's key, and calls made the way an upstream makes
them (JSON, ``Authorization: Bearer <service token>``)."""

import json

import pytest

from gateway.services import upstream_service_token_issue
from metering.hotpath import policy_for
from metering.limiter import get_limiter
from portal.keys.cache import key_cache
from tests.factories import (
    AccountFactory,
    ApiKeyFactory,
    EndpointFactory,
    TierFactory,
    UpstreamFactory,
)


@pytest.fixture
def edge_upstream(db):
    return UpstreamFactory(name="inventory", base_url="http://127.0.0.1:9")


@pytest.fixture
def service_token(edge_upstream):
    return upstream_service_token_issue(upstream=edge_upstream, actor=None)


@pytest.fixture
def endpoint(edge_upstream):
    return EndpointFactory(
        upstream=edge_upstream,
        operation_id="generate",
        method="POST",
        public_path="/generate",
        cost=1,
        max_cost=10,
        scope="basic",
    )


@pytest.fixture
def developer_key(db):
    tier = TierFactory(
        slug="edge-builder",
        rate_limit_per_minute=600,
        included_units=1000,
        scopes=["basic"],
    )
    return ApiKeyFactory(account=AccountFactory(tier=tier))


@pytest.fixture
def post(client):
    """POST JSON to a /v1/keys/ path with a bearer token (``token=None``: no header)."""

    def send(path, body, *, token):
        headers = {} if token is None else {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        payload = body if isinstance(body, str) else json.dumps(body)
        return client.post(path, payload, content_type="application/json", **headers)

    return send


def units_counted(key) -> int:
    """The quota counter of the key's account this period (0 when nothing was counted)."""
    principal = key_cache.resolve(key.plaintext)
    return get_limiter().quota_used(principal.account_id, policy_for(principal)) or 0


def usage_of(key):
    """Every live usage count of the key's account, all minutes together."""
    return [
        count for counts in get_limiter().live_usage(key.account_id).values() for count in counts
    ]
