"""pytest fixtures: one emulator per session on a free port, reset before every test.

pytest_plugins = ["devtools.stripe_emulator.pytest_plugin"]

def test_x(stripe_emulator, stripe_client): ...
"""

from __future__ import annotations

import pytest

from .emulator import Emulator

TEST_SECRET_KEY = "sk_test_emulator"  # noqa: S105 - any sk_test_ key works


@pytest.fixture(scope="session")
def stripe_emulator_server():
    # Manual webhook delivery by default: a test decides when (and where) events arrive.
    emulator = Emulator(port=0, webhook_mode="manual", retry_delays=(0.05, 0.1)).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def stripe_emulator(stripe_emulator_server):
    """The session's emulator, with a clean state, manual webhooks and no faults."""
    stripe_emulator_server.reset()
    stripe_emulator_server.set_webhook_mode("manual")
    yield stripe_emulator_server
    stripe_emulator_server.reset()


@pytest.fixture
def stripe_client(stripe_emulator):
    import stripe

    return stripe.StripeClient(TEST_SECRET_KEY, base_addresses={"api": stripe_emulator.url})
