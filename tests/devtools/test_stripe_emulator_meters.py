"""Billing meters, meter events and their summaries."""

from __future__ import annotations

import pytest
import stripe


def _event(client, catalog, value="5", identifier=None, **extra):
    params = {
        "event_name": "api_calls",
        "payload": {"stripe_customer_id": catalog.customer.id, "value": value},
        **extra,
    }
    if identifier:
        params["identifier"] = identifier
    return client.v1.billing.meter_events.create(params=params)


def test_meter_shape_and_deactivation(catalog, stripe_client):
    meter = stripe_client.v1.billing.meters.retrieve(catalog.meter.id)
    assert meter.object == "billing.meter"
    assert meter.default_aggregation.formula == "sum"
    assert meter.customer_mapping.event_payload_key == "stripe_customer_id"
    deactivated = stripe_client.v1.billing.meters.deactivate(meter.id)
    assert deactivated.status == "inactive"
    assert stripe_client.v1.billing.meters.list(params={"status": "active"}).data == []


def test_duplicate_identifier_is_rejected_and_counted_once(catalog, stripe_client, stripe_emulator):
    created = _event(stripe_client, catalog, "7", identifier="acct-1:2026-06-01T10")
    assert created.object == "billing.meter_event" and created.payload["value"] == "7"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _event(stripe_client, catalog, "7", identifier="acct-1:2026-06-01T10")
    assert caught.value.http_status == 400
    assert caught.value.code == "duplicate_meter_event"
    assert "already exists with identifier" in caught.value.user_message
    assert stripe_emulator.meter_event_total(catalog.customer.id, "api_calls") == 7


def test_identifier_may_be_reused_after_24_hours(catalog, stripe_client, stripe_emulator):
    _event(stripe_client, catalog, "1", identifier="same")
    stripe_emulator.advance_clock(24 * 3600 + 1)
    _event(stripe_client, catalog, "1", identifier="same")
    assert stripe_emulator.meter_event_total(catalog.customer.id, catalog.meter.id) == 2


@pytest.mark.parametrize("value", ["1.5", "-3", "ten"])
def test_value_must_be_a_whole_number(catalog, stripe_client, value):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _event(stripe_client, catalog, value)
    assert caught.value.param == "payload[value]"


def test_timestamp_window_follows_the_emulator_clock(catalog, stripe_client, stripe_emulator):
    now = stripe_emulator.now
    with pytest.raises(stripe.InvalidRequestError) as too_old:
        _event(stripe_client, catalog, timestamp=now - 36 * 86400)
    assert too_old.value.code == "timestamp_too_far_in_past"
    with pytest.raises(stripe.InvalidRequestError) as too_new:
        _event(stripe_client, catalog, timestamp=now + 6 * 60)
    assert too_new.value.code == "timestamp_in_future"
    _event(stripe_client, catalog, timestamp=now - 34 * 86400)
    _event(stripe_client, catalog, timestamp=now + 4 * 60)


def test_unknown_customer_or_event_name_is_accepted_but_never_billed(
    catalog, stripe_client, stripe_emulator
):
    stripe_client.v1.billing.meter_events.create(
        params={
            "event_name": "api_calls",
            "payload": {"stripe_customer_id": "cus_nobody", "value": "3"},
        }
    )
    stripe_client.v1.billing.meter_events.create(
        params={
            "event_name": "no_such_meter",
            "payload": {"stripe_customer_id": catalog.customer.id, "value": "3"},
        }
    )
    errors = stripe_emulator.stats()["meter_event_errors"]
    assert [e["code"] for e in errors] == ["meter_event_customer_not_found", "no_meter"]
    assert stripe_emulator.meter_event_total(catalog.customer.id, "api_calls") == 0


def test_event_summaries_sum_values_in_the_window(catalog, stripe_client, stripe_emulator):
    start = stripe_emulator.now // 3600 * 3600 - 7200
    _event(stripe_client, catalog, "10", timestamp=start + 60)
    _event(stripe_client, catalog, "5", timestamp=start + 3600 + 60)
    _event(stripe_client, catalog, "100", timestamp=start + 7200 + 60)  # outside the window
    summaries = stripe_client.v1.billing.meters.event_summaries.list(
        catalog.meter.id,
        params={"customer": catalog.customer.id, "start_time": start, "end_time": start + 7200},
    )
    assert [s.aggregated_value for s in summaries.data] == [15.0]
    hourly = stripe_client.v1.billing.meters.event_summaries.list(
        catalog.meter.id,
        params={
            "customer": catalog.customer.id,
            "start_time": start,
            "end_time": start + 7200,
            "value_grouping_window": "hour",
        },
    )
    assert sorted(s.aggregated_value for s in hourly.data) == [5.0, 10.0]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.billing.meters.event_summaries.list(
            catalog.meter.id, params={"customer": catalog.customer.id, "start_time": start}
        )
