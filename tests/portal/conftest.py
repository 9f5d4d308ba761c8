"""Fixtures of the API key and API tests."""

import pytest

from tests.factories import AccountFactory, ApiKeyFactory, PaidTierFactory


@pytest.fixture
def api_key(account):
    """A working key of the owner's account; the full key is ``api_key.plaintext``."""
    return ApiKeyFactory(account=account, name="laptop")


@pytest.fixture
def bearer(api_key):
    """Request headers that authenticate as ``api_key``."""
    return {"HTTP_AUTHORIZATION": f"Bearer {api_key.plaintext}"}


@pytest.fixture
def paid_tier(db):
    return PaidTierFactory(slug="pro", name="Pro")


@pytest.fixture
def paid_key(paid_tier):
    """A key of an account on the paid tier (scopes basic and compute)."""
    return ApiKeyFactory(account=AccountFactory(tier=paid_tier), name="paid")


@pytest.fixture
def paid_bearer(paid_key):
    return {"HTTP_AUTHORIZATION": f"Bearer {paid_key.plaintext}"}


class FakeClock:
    """A monotonic clock a test moves by hand, instead of sleeping."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()
