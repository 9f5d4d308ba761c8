"""Fault injection, request counts, and the /_emulator/ control API."""

from __future__ import annotations

import pytest
import requests
import stripe

METER_EVENTS = "/v1/billing/meter_events"


def _send_usage(client, customer_id, identifier, **options):
    return client.v1.billing.meter_events.create(
        params={
            "event_name": "api_calls",
            "identifier": identifier,
            "payload": {"stripe_customer_id": customer_id, "value": "10"},
        },
        options=options,
    )


def test_next_request_fails_with_500(catalog, stripe_client, stripe_emulator):
    stripe_emulator.inject_fault(METER_EVENTS, status=500, count=1)
    with pytest.raises(stripe.APIError) as caught:
        _send_usage(stripe_client, catalog.customer.id, "a")
    assert caught.value.http_status == 500
    _send_usage(stripe_client, catalog.customer.id, "a")  # the fault was used up; not recorded
    assert stripe_emulator.meter_event_total(catalog.customer.id, "api_calls") == 10
    assert stripe_emulator.request_count(METER_EVENTS) == 2


def test_429_carries_retry_headers(catalog, stripe_emulator):
    stripe_emulator.inject_fault(METER_EVENTS, status=429, count=1, retry_after=2)
    answer = requests.post(
        stripe_emulator.url + METER_EVENTS,
        auth=("sk_test_x", ""),
        timeout=5,
        data={
            "event_name": "api_calls",
            "payload[stripe_customer_id]": catalog.customer.id,
            "payload[value]": "1",
        },
    )
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"
    assert answer.headers["Stripe-Should-Retry"] == "true"
    assert answer.json()["error"]["code"] == "rate_limit"


def test_sdk_retries_through_a_429_with_the_same_idempotency_key(catalog, stripe_emulator):
    client = stripe.StripeClient(
        "sk_test_x", base_addresses={"api": stripe_emulator.url}, max_network_retries=2
    )
    stripe_emulator.inject_fault(METER_EVENTS, status=429, count=1, retry_after=0)
    _send_usage(client, catalog.customer.id, "retry-me")
    assert stripe_emulator.request_count(METER_EVENTS) == 2
    assert stripe_emulator.meter_event_total(catalog.customer.id, "api_calls") == 10


def test_fraction_faults_are_reproducible_with_a_seed(catalog, stripe_client, stripe_emulator):
    def failures():
        stripe_emulator.clear_faults()
        stripe_emulator.inject_fault("/v1/customers", status=500, fraction=0.3, seed=7)
        outcome = []
        for _ in range(20):
            try:
                stripe_client.v1.customers.list()
                outcome.append(False)
            except stripe.APIError:
                outcome.append(True)
        return outcome

    first = failures()
    assert 0 < sum(first) < 20
    assert failures() == first


@pytest.mark.parametrize(("apply", "recorded"), [(True, 10), (False, 0)])
def test_timeout_leaves_the_event_recorded_or_not(catalog, stripe_emulator, apply, recorded):
    client = stripe.StripeClient(
        "sk_test_x",
        base_addresses={"api": stripe_emulator.url},
        http_client=stripe.RequestsClient(timeout=0.2),
    )
    stripe_emulator.inject_fault(METER_EVENTS, delay=0.5, apply=apply, count=1)
    with pytest.raises(stripe.APIConnectionError):
        _send_usage(client, catalog.customer.id, "slow", idempotency_key="slow-key")
    stripe_emulator.state.faults.clear()
    import time

    time.sleep(0.4)  # let the delayed request finish on the server
    assert stripe_emulator.meter_event_total(catalog.customer.id, "api_calls") == recorded
    # The client's retry with the same key replays the stored result instead of failing.
    retried = _send_usage(client, catalog.customer.id, "slow", idempotency_key="slow-key")
    assert retried.identifier == "slow"
    assert stripe_emulator.meter_event_total(catalog.customer.id, "api_calls") == 10


def test_control_api_over_http(catalog, stripe_client, stripe_emulator):
    base = stripe_emulator.url + "/_emulator"
    before = requests.get(f"{base}/clock", timeout=5).json()["now"]
    after = requests.post(f"{base}/clock/advance", json={"seconds": 3600}, timeout=5).json()["now"]
    assert after - before >= 3600
    requests.post(f"{base}/faults", json={"path_prefix": "/v1/products", "status": 500}, timeout=5)
    with pytest.raises(stripe.APIError):
        stripe_client.v1.products.list()
    requests.post(
        f"{base}/customers/{catalog.customer.id}/declines", json={"decline": True}, timeout=5
    )
    stats = requests.get(f"{base}/stats", timeout=5).json()
    assert stats["declining_customers"] == [catalog.customer.id]
    assert stats["requests"]["GET /v1/products"] == 1
    requests.post(f"{base}/reset", timeout=5)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.retrieve(catalog.customer.id)
