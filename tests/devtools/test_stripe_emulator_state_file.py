"""The state file: an emulator given one loads its whole state from it and saves it after every
change, atomically; without one (the default, and the pytest fixtures) nothing is written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import stripe

from devtools.stripe_emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]


def _client(emulator):
    return stripe.StripeClient("sk_test_state", base_addresses={"api": emulator.url})


def _build_account(client, emulator) -> dict:
    customer = client.v1.customers.create(params={"email": "keep@example.com"})
    meter = client.v1.billing.meters.create(
        params={
            "display_name": "API calls",
            "event_name": "api_calls",
            "default_aggregation": {"formula": "sum"},
        }
    )
    product = client.v1.products.create(params={"name": "Pro"})
    base = client.v1.prices.create(
        params={
            "currency": "usd",
            "product": product.id,
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
        }
    )
    metered = client.v1.prices.create(
        params={
            "currency": "usd",
            "product": product.id,
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [{"up_to": 10, "unit_amount": 0}, {"up_to": "inf", "unit_amount": 1}],
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": base.id, "quantity": 1}, {"price": metered.id}],
            "success_url": "http://portal.test/ok",
        }
    )
    requests.post(session.url + "/pay", allow_redirects=False, timeout=5)
    client.v1.billing.meter_events.create(
        params={
            "event_name": "api_calls",
            "identifier": "once",
            "payload": {"stripe_customer_id": customer.id, "value": "25"},
        }
    )
    configuration = client.v1.billing_portal.configurations.create(
        params={"features": {"invoice_history": {"enabled": True}}}
    )
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "http://portal.test/hook", "enabled_events": ["*"]}
    )
    emulator.advance_clock(3600)
    return {
        "customer": customer.id,
        "sub": client.v1.checkout.sessions.retrieve(session.id).subscription,
        "configuration": configuration.id,
        "endpoint": endpoint.id,
        "now": emulator.now,
    }


def test_the_state_survives_a_restart(tmp_path):
    path = tmp_path / "var" / "stripe-emulator.json"
    first = Emulator(port=0, webhook_mode="manual", state_file=path).start()
    try:
        client = _client(first)
        made = _build_account(client, first)
        replied = client.v1.customers.create(
            params={"name": "idem"}, options={"idempotency_key": "persisted-key"}
        )
    finally:
        first.stop()
    assert path.exists() and not list(path.parent.glob(".stripe-emulator.json.*"))
    assert json.loads(path.read_text())["format"] == 1

    second = Emulator(port=0, webhook_mode="manual", state_file=path).start()
    try:
        client = _client(second)
        assert second.now >= made["now"]  # the clock's offset came back too
        sub = client.v1.subscriptions.retrieve(made["sub"], params={"expand": ["latest_invoice"]})
        assert sub.status == "active" and sub.latest_invoice.status == "paid"
        assert len(sub["items"].data) == 2
        assert second.meter_event_total(made["customer"], "api_calls") == 25
        with pytest.raises(stripe.InvalidRequestError) as duplicate:
            client.v1.billing.meter_events.create(
                params={
                    "event_name": "api_calls",
                    "identifier": "once",
                    "payload": {"stripe_customer_id": made["customer"], "value": "25"},
                }
            )
        assert duplicate.value.code == "duplicate_meter_event"
        again = client.v1.customers.create(
            params={"name": "idem"}, options={"idempotency_key": "persisted-key"}
        )
        assert again.id == replied.id
        assert again.last_response.headers["Idempotent-Replayed"] == "true"
        assert client.v1.billing_portal.configurations.retrieve(made["configuration"]).id
        # Webhooks queued before the restart are still delivered, signed for the endpoint.
        delivered = second.deliver_pending(lambda *a: 200)
        assert {d["type"] for d in delivered} >= {"customer.created"}
        assert client.v1.webhook_endpoints.retrieve(made["endpoint"]).url == (
            "http://portal.test/hook"
        )
    finally:
        second.stop()


def test_memory_only_by_default(tmp_path, stripe_emulator, stripe_client, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stripe_client.v1.customers.create()
    assert stripe_emulator.stats()["state_file"] is None
    assert list(tmp_path.iterdir()) == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_cli_takes_the_state_file_from_the_environment(tmp_path):
    path = tmp_path / "emulator.json"
    port = _free_port()
    env = {**os.environ, "STRIPE_EMULATOR_STATE_FILE": str(path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.stripe_emulator", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None  # stdout=PIPE
        assert f"state in {path}" in process.stdout.readline()
        url = f"http://127.0.0.1:{port}/v1/customers"
        deadline = time.monotonic() + 10
        while True:
            try:
                created = requests.post(
                    url, auth=("sk_test_cli", ""), data={"name": "cli"}, timeout=5
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        saved = json.loads(path.read_text())
        assert created.json()["id"] in {o["id"] for o in saved["objects"]}
    finally:
        process.terminate()
        process.wait(timeout=5)
