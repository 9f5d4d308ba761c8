"""Fixtures of the metering tests: API keys on tiers made to measure, and a client to call with."""

import pytest

from metering.limiter import get_limiter
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory


@pytest.fixture
def metered_urls(settings):
    settings.ROOT_URLCONF = "tests.metering.urls"


@pytest.fixture
def api_key(db):
    """Make an API key on a tier with the given fields (a fresh account each call)."""

    def make(*, account=None, **tier_fields):
        if account is None:
            account = AccountFactory(tier=TierFactory(**tier_fields))
        return ApiKeyFactory(account=account)

    return make


@pytest.fixture
def call(client, metered_urls):
    """GET a metered path with a key: ``call(key, "/v1/test/lookup")``."""

    def get(key, path, **params):
        return client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")

    return get


@pytest.fixture
def limiter():
    return get_limiter()
