"""Meter events that fail Stripe's asynchronous validation: accepted by the create call, never
billed or summarised, and reported by v2 thin events (`v1.billing.meter.error_report_triggered`,
`v1.billing.meter.no_meter_found`) sent to event destinations. "Types of events v2",
https://docs.stripe.com/api/v2/core/events/event-types; "The Event object",
https://docs.stripe.com/api/v2/core/events/object."""

from __future__ import annotations

import json

import pytest
import stripe

ERROR_REPORT = "v1.billing.meter.error_report_triggered"
NO_METER = "v1.billing.meter.no_meter_found"


def _send(client, payload, event_name="api_calls", identifier=None):
    params = {"event_name": event_name, "payload": payload}
    if identifier:
        params["identifier"] = identifier
    return client.v1.billing.meter_events.create(params=params)


@pytest.fixture
def destination(stripe_client):
    """A thin-event destination, as a product registers one (the secret is shown on request)."""
    return stripe_client.v2.core.event_destinations.create(
        params={
            "name": "meter errors",
            "type": "webhook_endpoint",
            "event_payload": "thin",
            "enabled_events": [ERROR_REPORT, NO_METER],
            "webhook_endpoint": {"url": "http://portal.test/stripe/thin-events/"},
            "include": ["webhook_endpoint.signing_secret"],
        }
    )


def test_an_unknown_customer_is_accepted_then_reported(
    catalog, stripe_client, stripe_emulator, destination
):
    created = _send(
        stripe_client, {"stripe_customer_id": "cus_nobody", "value": "3"}, identifier="u-1"
    )
    assert created.identifier == "u-1"  # the create call itself succeeds
    event = stripe_emulator.thin_events(ERROR_REPORT)[0]
    assert event["object"] == "v2.core.event"
    assert event["related_object"] == {
        "id": catalog.meter.id,
        "type": "billing.meter",
        "url": f"/v1/billing/meters/{catalog.meter.id}",
    }
    error_type = event["data"]["reason"]["error_types"][0]
    assert (error_type["code"], error_type["error_count"]) == ("meter_event_customer_not_found", 1)
    assert error_type["sample_errors"][0]["request"] == {"identifier": "u-1"}
    assert event["data"]["validation_start"] <= event["data"]["validation_end"]


def test_the_thin_notification_is_signed_and_fetched_through_the_sdk(
    catalog, stripe_client, stripe_emulator, destination
):
    secret = destination.webhook_endpoint.signing_secret
    assert secret.startswith("whsec_")
    stripe_client.v1.webhook_endpoints.create(
        params={"url": "http://portal.test/stripe/webhook/x/", "enabled_events": ["*"]}
    )
    _send(stripe_client, {"value": "3"})  # no stripe_customer_id in the payload
    deliveries = []

    def send(url, body, headers):
        deliveries.append((url, body, headers))
        return 200

    stripe_emulator.deliver_pending(send)
    # Only the event destination gets it: a v1 webhook endpoint never receives thin events.
    assert [url for url, _, _ in deliveries] == ["http://portal.test/stripe/thin-events/"]
    _, body, headers = deliveries[0]
    assert "data" not in json.loads(body)
    notification = stripe_client.parse_event_notification(body, headers["Stripe-Signature"], secret)
    assert notification.type == ERROR_REPORT
    event = notification.fetch_event()
    assert event.data.reason.error_types[0].code == "meter_event_no_customer_defined"
    assert event.data.reason.error_types[0].sample_errors[0].error_message == (
        "Customer mapping key stripe_customer_id not found in payload."
    )
    assert notification.fetch_related_object().id == catalog.meter.id
    listed = stripe_client.v2.core.events.list(params={"object_id": catalog.meter.id})
    assert [e.id for e in listed.data] == [event.id]


def test_deleted_customers_unknown_and_deactivated_meters(catalog, stripe_client, stripe_emulator):
    gone = stripe_client.v1.customers.create()
    stripe_client.v1.customers.delete(gone.id)
    _send(stripe_client, {"stripe_customer_id": gone.id, "value": "1"})
    _send(stripe_client, {"stripe_customer_id": catalog.product.id, "value": "1"})  # not a customer
    _send(stripe_client, {"stripe_customer_id": catalog.customer.id, "value": "1"}, "no_such")
    stripe_client.v1.billing.meters.deactivate(catalog.meter.id)
    _send(stripe_client, {"stripe_customer_id": catalog.customer.id, "value": "1"})
    codes = [e["code"] for e in stripe_emulator.stats()["meter_event_errors"]]
    assert codes == [
        "meter_event_customer_not_found",
        "meter_event_customer_not_found",
        "no_meter",
        "archived_meter",
    ]
    no_meter = stripe_emulator.thin_events(NO_METER)
    assert len(no_meter) == 1 and no_meter[0]["related_object"] is None
    reports = stripe_emulator.thin_events(ERROR_REPORT)
    assert reports[0]["data"]["reason"]["error_types"][0]["code"] == "archived_meter"


def test_failed_events_are_not_summarised_and_a_customer_needs_no_subscription(
    catalog, stripe_client, stripe_emulator
):
    start = stripe_emulator.now // 60 * 60 - 600
    _send(stripe_client, {"stripe_customer_id": catalog.customer.id, "value": "5"})
    _send(stripe_client, {"stripe_customer_id": "cus_nobody", "value": "50"})
    summaries = stripe_client.v1.billing.meters.event_summaries.list(
        catalog.meter.id,
        params={"customer": catalog.customer.id, "start_time": start, "end_time": start + 1200},
    )
    assert [s.aggregated_value for s in summaries.data] == [5.0]
    assert stripe_emulator.thin_events() and len(stripe_emulator.thin_events()) == 1


def test_event_destinations(stripe_client, stripe_emulator, destination):
    fetched = stripe_client.v2.core.event_destinations.retrieve(destination.id)
    assert fetched.webhook_endpoint.signing_secret is None  # shown only when included
    assert (fetched.event_payload, fetched.status) == ("thin", "enabled")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v2.core.event_destinations.create(
            params={
                "name": "wrong",
                "type": "webhook_endpoint",
                "event_payload": "thin",
                "enabled_events": ["invoice.paid"],
                "webhook_endpoint": {"url": "http://portal.test/x"},
            }
        )
    assert caught.value.http_status == 400
    stripe_client.v2.core.event_destinations.disable(destination.id)
    _send(stripe_client, {"stripe_customer_id": "cus_nobody", "value": "1"}, "no_such")
    assert stripe_emulator.deliver_pending(lambda *a: 200) == []  # disabled: nothing sent
    snapshot = stripe_client.v2.core.event_destinations.create(
        params={
            "name": "snapshots",
            "type": "webhook_endpoint",
            "event_payload": "snapshot",
            "enabled_events": ["customer.created"],
            "webhook_endpoint": {"url": "http://portal.test/snapshots"},
        }
    )
    customer = stripe_client.v1.customers.create()
    sent = stripe_emulator.deliver_pending(lambda *a: 200)
    assert [(r["type"], r["url"]) for r in sent] == [
        ("customer.created", "http://portal.test/snapshots")
    ]
    stripe_client.v2.core.event_destinations.delete(snapshot.id)
    assert customer.id
