"""Idempotency-Key as Stripe implements it: the first answer of a request whose execution began is
saved (500s included) and replayed for 24 hours; refusals from before execution are not saved.
"Idempotent requests", https://docs.stripe.com/api/idempotent_requests."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import stripe

from devtools.stripe_emulator.router import resolve

CUSTOMERS = "/v1/customers"
METER_EVENTS = "/v1/billing/meter_events"


def _post(emulator, path, key, **data):
    return requests.post(
        emulator.url + path,
        auth=("sk_test_x", ""),
        headers={"Idempotency-Key": key} if key else {},
        data=data,
        timeout=5,
    )


def test_an_injected_500_is_saved_and_replayed_for_the_same_key(stripe_client, stripe_emulator):
    stripe_emulator.inject_fault(CUSTOMERS, status=500, count=1)
    first = _post(stripe_emulator, CUSTOMERS, "k-500", email="a@example.com")
    assert first.status_code == 500
    # A retry would only replay it, so Stripe tells clients not to retry.
    assert first.headers["Stripe-Should-Retry"] == "false"
    again = _post(stripe_emulator, CUSTOMERS, "k-500", email="a@example.com")
    assert (again.status_code, again.json()) == (500, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    # Nothing was created (the failed request left nothing behind), and a new key runs anew.
    assert stripe_client.v1.customers.list().data == []
    assert stripe_emulator.events("customer.created") == []
    fresh = _post(stripe_emulator, CUSTOMERS, "k-new", email="a@example.com")
    assert fresh.status_code == 200
    assert len(stripe_client.v1.customers.list().data) == 1


def test_the_sdk_retrying_with_its_key_gets_the_saved_500(catalog, stripe_emulator):
    client = stripe.StripeClient(
        "sk_test_x", base_addresses={"api": stripe_emulator.url}, max_network_retries=2
    )
    stripe_emulator.inject_fault(METER_EVENTS, status=500, count=1, should_retry=True)
    with pytest.raises(stripe.APIError) as caught:
        client.v1.billing.meter_events.create(
            params={
                "event_name": "api_calls",
                "identifier": "report-1",
                "payload": {"stripe_customer_id": catalog.customer.id, "value": "10"},
            },
            options={"idempotency_key": "report-1"},
        )
    assert caught.value.http_status == 500
    assert stripe_emulator.request_count(METER_EVENTS) == 3  # two retries, both replays
    assert stripe_emulator.meter_event_total(catalog.customer.id, "api_calls") == 0


def test_a_500_with_apply_did_the_work_but_still_replays_the_500(catalog, stripe_emulator):
    stripe_emulator.inject_fault(METER_EVENTS, status=500, count=1, apply=True)
    data = {
        "event_name": "api_calls",
        "identifier": "applied",
        "payload[stripe_customer_id]": catalog.customer.id,
        "payload[value]": "4",
    }
    assert _post(stripe_emulator, METER_EVENTS, "k-applied", **data).status_code == 500
    assert stripe_emulator.meter_event_total(catalog.customer.id, "api_calls") == 4
    assert _post(stripe_emulator, METER_EVENTS, "k-applied", **data).status_code == 500
    # A new key for the same report: the identifier already deduplicates it.
    again = _post(stripe_emulator, METER_EVENTS, "k-other", **data)
    assert again.json()["error"]["code"] == "duplicate_meter_event"


def test_refusals_before_execution_are_not_saved(stripe_client, stripe_emulator):
    # Parameter validation: fix the request, retry with the same key, it runs.
    bad = _post(stripe_emulator, CUSTOMERS, "k-valid", emial="typo@example.com")
    assert bad.json()["error"]["code"] == "parameter_unknown"
    # A 429 from the rate limiter, which runs in front of the idempotency layer.
    stripe_emulator.inject_fault(CUSTOMERS, status=429, count=1)
    limited = _post(stripe_emulator, CUSTOMERS, "k-limited", email="b@example.com")
    assert limited.status_code == 429 and limited.headers["Stripe-Should-Retry"] == "true"
    assert _post(stripe_emulator, CUSTOMERS, "k-limited", email="b@example.com").status_code == 200
    # An injected 500 on an invalid request: validation comes first, nothing is saved.
    stripe_emulator.inject_fault(CUSTOMERS, status=500, count=1)
    assert _post(stripe_emulator, CUSTOMERS, "k-bad", emial="x").status_code == 400
    assert _post(stripe_emulator, CUSTOMERS, "k-bad", email="c@example.com").status_code == 200


def test_errors_after_execution_began_are_saved(stripe_client, stripe_emulator):
    missing = _post(stripe_emulator, "/v1/customers/cus_nobody", "k-404", name="x")
    assert missing.status_code == 404
    replay = _post(stripe_emulator, "/v1/customers/cus_nobody", "k-404", name="x")
    assert replay.status_code == 404 and replay.headers["Idempotent-Replayed"] == "true"


def test_a_crashing_handler_answers_a_saved_500(stripe_emulator, monkeypatch, caplog):
    # An emulator bug surfaces as Stripe's own would once execution began: a 500 `api_error`,
    # saved under the Idempotency-Key and replayed, never a dropped connection.
    route, _, _ = resolve("POST", CUSTOMERS)
    assert route is not None

    def crash(state, params):
        raise RuntimeError("emulator bug")

    monkeypatch.setattr(route, "handler", crash)
    first = _post(stripe_emulator, CUSTOMERS, "k-bug", name="n")
    assert first.status_code == 500
    assert first.json()["error"]["type"] == "api_error"
    assert "emulator handler failed" in caplog.text
    again = _post(stripe_emulator, CUSTOMERS, "k-bug", name="n")
    assert (again.status_code, again.json()) == (500, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_key_is_pruned_after_24_hours(stripe_client, stripe_emulator):
    stripe_emulator.inject_fault(CUSTOMERS, status=500, count=1)
    assert _post(stripe_emulator, CUSTOMERS, "k-day", email="d@example.com").status_code == 500
    stripe_emulator.advance_clock(23 * 3600)
    assert _post(stripe_emulator, CUSTOMERS, "k-day", email="d@example.com").status_code == 500
    stripe_emulator.advance_clock(3600)
    assert _post(stripe_emulator, CUSTOMERS, "k-day", email="d@example.com").status_code == 200


def test_a_concurrent_request_with_the_same_key_is_a_409_not_saved(catalog, stripe_emulator):
    stripe_emulator.inject_fault(CUSTOMERS, status=None, delay=0.5, apply=True, count=1)
    slow: dict[str, requests.Response] = {}
    thread = threading.Thread(
        target=lambda: slow.update(answer=_post(stripe_emulator, CUSTOMERS, "k-twice", name="n"))
    )
    thread.start()
    time.sleep(0.2)
    second = _post(stripe_emulator, CUSTOMERS, "k-twice", name="n")
    thread.join()
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_key_in_use"
    assert slow["answer"].status_code == 200
    third = _post(stripe_emulator, CUSTOMERS, "k-twice", name="n")
    assert third.json()["id"] == slow["answer"].json()["id"]


def test_get_and_delete_ignore_the_key_and_delete_reads_its_query(
    catalog, stripe_client, stripe_emulator, subscribe
):
    sub = subscribe(catalog)
    for _ in range(2):
        listed = requests.get(
            stripe_emulator.url + CUSTOMERS,
            auth=("sk_test_x", ""),
            headers={"Idempotency-Key": "k-get"},
            timeout=5,
        )
        assert "Idempotent-Replayed" not in listed.headers
    # stripe-python sends DELETE parameters in the query string.
    stripe_client.v1.subscriptions.cancel(sub.id, params={"invoice_now": True})
    final = stripe_client.v1.invoices.list(params={"subscription": sub.id}).data[0]
    assert final.billing_reason == "subscription_cycle" and final.status == "draft"
