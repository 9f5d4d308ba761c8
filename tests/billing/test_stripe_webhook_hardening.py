"""What reaches the two Stripe doors (``/stripe/webhook/<uuid>/`` for v1 events,
``/stripe/events/`` for thin events) without being a delivery from Stripe: a secret named by
the sender, a timestamp far ahead, a huge body, a bad signature, a signed body that is not an
event. Each is refused with a clear 4xx, and no account changes.

Stripe signs ``"{t}.{body}"`` and its libraries allow five minutes ("Verify webhook signatures",
"Prevent replay attacks", https://docs.stripe.com/webhooks#replay-attacks); the SDK checks only
the past side, so the future side is ours (billing/services/deliveries.py)."""

import json
import time

import pytest
from django.test import Client
from django.urls import reverse
from djstripe.models import Event, WebhookEventTrigger

from billing.models import StripeEventDestination, StripeThinEvent
from billing.services.deliveries import REFUSED_BODY_PREFIX_CHARS
from devtools.stripe_emulator import sign
from tests.billing.conftest import checkout_and_pay

pytestmark = pytest.mark.django_db

THIN_RECEIVER = reverse("billing:stripe-thin-events")
DESTINATION_SECRET = "whsec_destination_for_tests"
YEAR = 365 * 24 * 3600


@pytest.fixture
def upgrade(owner_client, catalog, webhooks) -> bytes:
    """The owner has paid for Pro at Stripe; the event that would upgrade the account is queued
    and not delivered yet. Its body."""
    checkout_and_pay(owner_client, catalog.pro)
    created = next(
        event
        for event in webhooks.emulator.events()
        if event["type"] == "customer.subscription.created"
    )
    return json.dumps(created).encode()


@pytest.fixture
def destination(db) -> StripeEventDestination:
    return StripeEventDestination.objects.create(
        stripe_id="ed_tests",
        url="http://testserver" + THIN_RECEIVER,
        secret=DESTINATION_SECRET,
        enabled_events=["v1.billing.meter.error_report_triggered"],
    )


def _client() -> Client:
    # A 500 is an answer to look at here, not an exception to raise in the test.
    return Client(raise_request_exception=False)


def _post_webhook(endpoint, body: bytes, *, secret: str | None = None, at: float | None = None,
                  headers: dict | None = None):  # fmt: skip
    signature = sign(body, secret or endpoint.secret, int(time.time() if at is None else at))
    return _client().post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": signature, **(headers or {})},
    )


def _post_thin(body: bytes, *, at: float | None = None):
    signature = sign(body, DESTINATION_SECRET, int(time.time() if at is None else at))
    return _client().post(
        THIN_RECEIVER,
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": signature},
    )


def _thin_notification(**fields) -> bytes:
    notification = {
        "id": "evt_test_thin_0001",
        "object": "v2.core.event",
        "type": "v2.core.event_destination.ping",
        "livemode": False,
        "created": "2026-05-27T12:00:00.000Z",
        "related_object": {
            "id": "ed_tests",
            "type": "v2.core.event_destination",
            "url": "/v2/core/event_destinations/ed_tests",
        },
        **fields,
    }
    return json.dumps({k: v for k, v in notification.items() if v is not None}).encode()


def _still_free(account, catalog) -> bool:
    account.refresh_from_db()
    return (account.tier, account.payment_status) == (catalog.free, "none")


# --- A secret named by the sender -----------------------------------------------------------


def test_a_secret_sent_in_a_header_is_refused_even_in_debug(
    upgrade, account, catalog, webhooks, settings
):
    """dj-stripe 2.11 verifies with the X-Djstripe-Webhook-Secret header's secret in DEBUG."""
    settings.DEBUG = True
    triggers_before = WebhookEventTrigger.objects.count()

    response = _post_webhook(
        webhooks.endpoint,
        upgrade,
        secret="whsec_chosen_by_the_sender",
        headers={"X-Djstripe-Webhook-Secret": "whsec_chosen_by_the_sender"},
    )

    assert response.status_code == 400
    assert "X-Djstripe-Webhook-Secret" in response.content.decode()
    assert _still_free(account, catalog)
    assert not Event.objects.filter(type="customer.subscription.created").exists()
    assert WebhookEventTrigger.objects.count() == triggers_before


def test_the_header_is_refused_even_beside_a_good_signature(upgrade, account, catalog, webhooks):
    response = _post_webhook(
        webhooks.endpoint, upgrade, headers={"X-Djstripe-Webhook-Secret": "anything"}
    )

    assert response.status_code == 400
    assert _still_free(account, catalog)


# --- Timestamps -------------------------------------------------------------------------------


def test_an_event_signed_a_year_ahead_is_refused_and_applies_nothing(
    upgrade, account, catalog, webhooks
):
    response = _post_webhook(webhooks.endpoint, upgrade, at=time.time() + YEAR)

    assert response.status_code == 400
    assert "ahead of this server's clock" in response.content.decode()
    assert _still_free(account, catalog)
    assert not Event.objects.filter(type="customer.subscription.created").exists()
    # What is kept of it is the operator's note of a refusal, not the event.
    refusal = WebhookEventTrigger.objects.latest("created")
    assert (refusal.valid, refusal.processed, refusal.event) == (False, False, None)
    assert len(refusal.body) <= REFUSED_BODY_PREFIX_CHARS
    assert "ahead of this server's clock" in refusal.exception


def test_an_event_signed_six_minutes_ahead_is_refused(upgrade, account, catalog, webhooks):
    response = _post_webhook(webhooks.endpoint, upgrade, at=time.time() + 360)

    assert response.status_code == 400
    assert _still_free(account, catalog)


def test_an_event_signed_a_minute_ahead_is_accepted(upgrade, account, catalog, webhooks):
    """A clock a little behind Stripe's is within the five minutes."""
    response = _post_webhook(webhooks.endpoint, upgrade, at=time.time() + 60)

    assert response.status_code == 200
    account.refresh_from_db()
    assert account.tier == catalog.pro


def test_an_event_signed_six_minutes_ago_is_refused(upgrade, account, catalog, webhooks):
    response = _post_webhook(webhooks.endpoint, upgrade, at=time.time() - 360)

    assert response.status_code == 400
    assert _still_free(account, catalog)


# --- Size -------------------------------------------------------------------------------------


def test_a_body_past_the_limit_is_413_and_nothing_is_stored(webhooks, settings):
    settings.STRIPE_WEBHOOK_MAX_BYTES = 512 * 1024
    body = json.dumps({"id": "evt_big", "padding": "x" * (600 * 1024)}).encode()
    triggers_before = WebhookEventTrigger.objects.count()

    response = _post_webhook(webhooks.endpoint, body)

    assert response.status_code == 413
    assert WebhookEventTrigger.objects.count() == triggers_before


def test_a_thin_event_past_the_limit_is_413(destination, settings):
    settings.STRIPE_WEBHOOK_MAX_BYTES = 4096
    body = _thin_notification(padding="x" * 5000)

    response = _post_thin(body)

    assert response.status_code == 413
    assert not StripeThinEvent.objects.exists()


# --- A bad signature ------------------------------------------------------------------------


def test_a_badly_signed_body_is_kept_only_as_a_short_prefix(webhooks):
    body = json.dumps({"id": "evt_forged", "padding": "x" * 200_000}).encode()

    response = _post_webhook(webhooks.endpoint, body, secret="whsec_forged")

    assert response.status_code == 400
    refusal = WebhookEventTrigger.objects.latest("created")
    assert refusal.valid is False
    assert len(refusal.body) <= REFUSED_BODY_PREFIX_CHARS
    assert refusal.body.startswith('{"id": "evt_forged"')
    assert "Not signed with this endpoint's secret" in refusal.exception
    assert len(json.dumps(refusal.headers)) < 2000


def test_an_unparsable_forwarded_address_does_not_break_the_refusal_record(webhooks):
    response = _post_webhook(
        webhooks.endpoint,
        b'{"id": "evt_forged"}',
        secret="whsec_forged",
        headers={"X-Forwarded-For": "not-an-address"},
    )

    assert response.status_code == 400
    unknown = "0.0.0.0"  # noqa: S104 - what the record says of an unknown sender
    assert WebhookEventTrigger.objects.latest("created").remote_ip == unknown


# --- Signed, but not an event ----------------------------------------------------------------


def test_a_signed_event_without_a_type_is_400_and_stores_nothing(
    upgrade, account, catalog, webhooks
):
    event = json.loads(upgrade)
    del event["type"]
    triggers_before = WebhookEventTrigger.objects.count()

    response = _post_webhook(webhooks.endpoint, json.dumps(event).encode())

    assert response.status_code == 400
    assert "no valid type" in response.content.decode()
    assert _still_free(account, catalog)
    assert not Event.objects.filter(id=event["id"]).exists()
    assert WebhookEventTrigger.objects.count() == triggers_before


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b"not json", b'{"id": "evt_1", "type": "invoice.paid", "livemode": false}'],
    ids=["a list", "not JSON", "no data"],
)
def test_other_signed_bodies_that_are_not_events_are_400(webhooks, body):
    response = _post_webhook(webhooks.endpoint, body)

    assert response.status_code == 400


def test_a_signed_thin_notification_without_a_type_is_400_and_stores_nothing(destination):
    response = _post_thin(_thin_notification(type=None))

    assert response.status_code == 400
    assert "no valid type" in response.content.decode()
    assert not StripeThinEvent.objects.exists()


@pytest.mark.parametrize("body", [b"[]", b"{}", b'"text"'], ids=["a list", "empty", "a string"])
def test_other_signed_thin_bodies_are_400(destination, body):
    response = _post_thin(body)

    assert response.status_code == 400
    assert not StripeThinEvent.objects.exists()


def test_a_thin_notification_signed_a_year_ahead_is_refused(destination):
    response = _post_thin(_thin_notification(), at=time.time() + YEAR)

    assert response.status_code == 400
    assert "ahead of this server's clock" in response.content.decode()
    assert not StripeThinEvent.objects.exists()


def test_a_thin_notification_signed_now_is_recorded(destination):
    response = _post_thin(_thin_notification())

    assert response.status_code == 200
    assert StripeThinEvent.objects.get().type == "v2.core.event_destination.ping"
