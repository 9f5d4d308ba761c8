"""manage.py create_webhook_endpoint also registers the event destination that sends the portal
Stripe's meter error reports (thin events never reach a v1 webhook endpoint: "Event
destinations", https://docs.stripe.com/event-destinations), once, with its secret kept."""

from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import StripeEventDestination
from billing.services.thin_events import METER_ERROR_EVENTS
from billing.services.webhook_endpoint import event_destination_ensure

pytestmark = pytest.mark.django_db

URL = "https://portal.example.com/stripe/events/"


def _remote(stripe_client):
    return stripe_client.v2.core.event_destinations.list(
        params={"include": ["webhook_endpoint.url"]}
    ).data


def test_the_command_registers_the_destination_once_and_prints_it(stripe_api, stripe_client):
    out = StringIO()

    call_command("create_webhook_endpoint", "--base-url", "https://portal.example.com", stdout=out)
    call_command("create_webhook_endpoint", "--base-url", "https://portal.example.com", stdout=out)

    destination = StripeEventDestination.objects.get()
    assert destination.url == URL
    assert destination.secret.startswith("whsec_")
    assert f"Created event destination {destination.stripe_id}" in out.getvalue()
    assert f"Already registered: event destination {destination.stripe_id}" in out.getvalue()
    [remote] = _remote(stripe_client)
    assert (remote.id, remote.event_payload, remote.webhook_endpoint.url) == (
        destination.stripe_id,
        "thin",
        URL,
    )
    assert set(remote.enabled_events) == set(METER_ERROR_EVENTS)


def test_a_destination_stripe_forgot_is_replaced(stripe_api, stripe_client):
    """`make run` may start an emulator that forgot its destinations: the stored secret must not
    outlive the destination it belonged to."""
    old, _ = event_destination_ensure(base_url="https://portal.example.com")
    stripe_api.reset()

    new, created = event_destination_ensure(base_url="https://portal.example.com")

    assert created and new.stripe_id != old.stripe_id and new.secret != old.secret
    assert list(StripeEventDestination.objects.values_list("stripe_id", flat=True)) == [
        new.stripe_id
    ]
    assert [d.id for d in _remote(stripe_client)] == [new.stripe_id]


def test_a_disabled_destination_is_replaced_by_an_enabled_one(stripe_api, stripe_client):
    old, _ = event_destination_ensure(base_url="https://portal.example.com")
    stripe_client.v2.core.event_destinations.disable(old.stripe_id)

    new, created = event_destination_ensure(base_url="https://portal.example.com")

    assert created and new.stripe_id != old.stripe_id
    assert [(d.id, d.status) for d in _remote(stripe_client)] == [(new.stripe_id, "enabled")]
