"""Events, webhook endpoints, signatures and delivery (manual and over HTTP)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import stripe


def _endpoint(client, url="http://portal.test/stripe/webhook/x/", events=("*",)):
    return client.v1.webhook_endpoints.create(
        params={"url": url, "enabled_events": list(events), "api_version": "2026-05-27.dahlia"}
    )


def test_secret_is_shown_only_on_create(stripe_client):
    endpoint = _endpoint(stripe_client)
    assert endpoint.secret.startswith("whsec_")
    assert "secret" not in stripe_client.v1.webhook_endpoints.retrieve(endpoint.id)
    assert stripe_client.v1.webhook_endpoints.delete(endpoint.id).deleted is True


def test_delivered_event_is_signed_as_stripe_signs(stripe_client, stripe_emulator):
    endpoint = _endpoint(stripe_client, events=["customer.created"])
    customer = stripe_client.v1.customers.create(params={"email": "hook@example.com"})
    stripe_client.v1.products.create(params={"name": "not subscribed to"})
    received = []

    def send(url, body, headers):
        received.append((url, body, headers))
        return 200

    results = stripe_emulator.deliver_pending(send)
    assert [r["type"] for r in results] == ["customer.created"]
    _, body, headers = received[0]
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], endpoint.secret)
    assert event.type == "customer.created" and event.data.object.id == customer.id
    assert event.api_version == "2026-05-27.dahlia"
    fetched = stripe_client.v1.events.retrieve(event.id)
    assert fetched.data.object.email == "hook@example.com"
    assert fetched.pending_webhooks == 0


def test_failed_delivery_is_retried_then_given_up(stripe_client, stripe_emulator):
    _endpoint(stripe_client, events=["customer.created"])
    stripe_client.v1.customers.create()
    statuses = iter([500, 200])
    assert [r["status"] for r in stripe_emulator.deliver_pending(lambda *a: next(statuses))] == [
        500
    ]
    assert [r["status"] for r in stripe_emulator.deliver_pending(lambda *a: next(statuses))] == [
        200
    ]
    assert stripe_emulator.deliver_pending(lambda *a: 200) == []
    stripe_client.v1.customers.create()
    for _ in range(5):  # the fixture allows two retries after the first attempt
        stripe_emulator.deliver_pending(lambda *a: 503)
    assert len([a for a in stripe_emulator.webhook_attempts() if a["status"] == 503]) == 3


def test_updates_carry_previous_attributes(stripe_client, stripe_emulator):
    product = stripe_client.v1.products.create(params={"name": "Old"})
    stripe_client.v1.products.update(product.id, params={"name": "New"})
    event = stripe_emulator.events("product.updated")[0]
    assert event["data"]["previous_attributes"]["name"] == "Old"
    listed = stripe_client.v1.events.list(params={"type": "product.updated"})
    assert [e.id for e in listed.data] == [event["id"]]


def test_http_delivery_posts_to_the_endpoint_with_retries(stripe_client, stripe_emulator):
    answers = iter([500, 200])
    bodies = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append((body, self.headers["Stripe-Signature"]))
            self.send_response(next(answers))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        endpoint = _endpoint(
            stripe_client,
            url=f"http://127.0.0.1:{receiver.server_address[1]}/hook",
            events=["customer.created"],
        )
        stripe_emulator.set_webhook_mode("http")
        stripe_client.v1.customers.create()
        assert stripe_emulator.wait_for_webhooks(timeout=5)
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert len(bodies) == 2  # a 500, then the retry that succeeded
    body, signature = bodies[-1]
    event = stripe.Webhook.construct_event(body, signature, endpoint.secret)
    assert json.loads(body)["id"] == event.id
