"""POST /stripe/webhook/<uuid>/ — dj-stripe's endpoint with Meterdesk's receivers behind it."""

import json
import time
import uuid

import pytest
import requests
from djstripe.models import Event, WebhookEventTrigger

from devtools.stripe_emulator import sign
from portal.services import account_tier_change
from tests.billing.conftest import checkout_and_pay
from tests.factories import TierFactory


def _post(client, endpoint, payload: bytes, secret: str | None = None):
    signature = sign(payload, secret or endpoint.secret, int(time.time()))
    return client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": signature},
    )


def _queued(emulator, event_type: str) -> dict:
    return next(e for e in emulator.events() if e["type"] == event_type)


@pytest.mark.django_db
def test_a_bad_signature_is_refused_and_changes_nothing(
    owner_client, account, catalog, webhooks, client
):
    checkout_and_pay(owner_client, catalog.pro)
    created = _queued(webhooks.emulator, "customer.subscription.created")
    events_before = Event.objects.count()

    response = _post(client, webhooks.endpoint, json.dumps(created).encode(), "whsec_forged")

    assert response.status_code == 400
    assert Event.objects.count() == events_before
    account.refresh_from_db()
    assert (account.tier, account.payment_status) == (catalog.free, "none")
    trigger = WebhookEventTrigger.objects.latest("created")
    assert (trigger.valid, trigger.processed) == (False, False)


@pytest.mark.django_db
def test_a_request_without_signature_is_refused(webhooks, client):
    response = client.post(
        f"/stripe/webhook/{webhooks.endpoint.djstripe_uuid}/",
        data=b'{"id": "evt_1", "livemode": false}',
        content_type="application/json",
    )

    assert response.status_code == 400


@pytest.mark.django_db
def test_an_unknown_endpoint_is_404(webhooks, client):
    response = client.post(
        f"/stripe/webhook/{uuid.uuid4()}/",
        data=b"{}",
        content_type="application/json",
        headers={"Stripe-Signature": "t=1,v1=0"},
    )

    assert response.status_code == 404


@pytest.mark.django_db
def test_the_same_event_delivered_twice_is_applied_once(
    owner_client, account, catalog, webhooks, client, stripe_api
):
    checkout_and_pay(owner_client, catalog.pro)
    webhooks.deliver()
    created = _queued(stripe_api, "customer.subscription.created")
    # An operator moves the account by hand after the upgrade.
    custom = TierFactory(slug="custom", name="Custom deal", is_public=False)
    account_tier_change(account=account, tier=custom, actor=None, reason="negotiated")
    account.refresh_from_db()
    version = account.cache_version
    subscription_reads = stripe_api.request_count("/v1/subscriptions/")

    # Stripe retries a delivery it thinks failed: the same event id again.
    response = _post(client, webhooks.endpoint, json.dumps(created).encode())

    assert response.status_code == 200
    assert Event.objects.filter(id=created["id"]).count() == 1
    account.refresh_from_db()
    assert account.tier == custom  # a re-run would have put it back on Pro
    assert account.cache_version == version
    assert stripe_api.request_count("/v1/subscriptions/") == subscription_reads


@pytest.mark.django_db
def test_an_unknown_event_type_is_accepted_and_ignored(subscribed, catalog, webhooks, client):
    version = subscribed.cache_version
    payload = json.dumps(
        {
            "id": "evt_future_kind_0001",
            "object": "event",
            "api_version": "2026-05-27.dahlia",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": "billing.credit_grant.future_thing",
            "data": {
                "object": {
                    "id": "cg_1",
                    "object": "billing.credit_grant",
                    "customer": subscribed.stripe_customer.id,
                }
            },
        }
    ).encode()

    response = _post(client, webhooks.endpoint, payload)

    assert response.status_code == 200
    subscribed.refresh_from_db()
    assert (subscribed.tier, subscribed.payment_status) == (catalog.pro, "active")
    assert subscribed.cache_version == version


@pytest.mark.django_db
def test_events_of_a_customer_without_account_are_accepted(
    catalog, webhooks, stripe_client, stripe_api
):
    """A subscription made in the Stripe dashboard for someone who never signed up."""
    customer = stripe_client.v1.customers.create(params={"email": "stranger@example.com"})
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [
                {"price": catalog.pro.stripe_base_price.id, "quantity": 1},
                {"price": catalog.pro.stripe_metered_price.id},
            ],
            "success_url": "http://testserver/",
        }
    )
    requests.post(session.url + "/pay", allow_redirects=False, timeout=5)

    results = webhooks.deliver()

    assert {r["type"] for r in results} >= {"customer.subscription.created", "invoice.paid"}


def _event(event_type: str, obj: dict) -> bytes:
    """An event as Stripe signs and sends it, about ``obj``."""
    return json.dumps(
        {
            "id": f"evt_{event_type.replace('.', '_')}_0001",
            "object": "event",
            "api_version": "2026-05-27.dahlia",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
            "data": {"object": obj},
        }
    ).encode()


_UNKNOWN_SUBSCRIPTION = "sub_NotOnStripe0001"
_INVOICE_PARENT = {"subscription_details": {"subscription": _UNKNOWN_SUBSCRIPTION}}


@pytest.mark.django_db
def test_an_event_for_a_subscription_stripe_does_not_know_changes_nothing(
    account, catalog, webhooks, client, stripe_client
):
    """Signed, but about a subscription Stripe has no record of (deleted test data, a replayed
    event): its payload is not taken for the truth. The event is accepted all the same, or
    Stripe would send it again for days: "Stripe automatically resends the undelivered events
    to your endpoint for up to three days" (Process undelivered webhook events,
    https://docs.stripe.com/webhooks/process-undelivered-events)."""
    customer = stripe_client.v1.customers.create(params={"email": account.owner.email})
    version = account.cache_version
    now = int(time.time())
    claimed = {
        "id": _UNKNOWN_SUBSCRIPTION,
        "object": "subscription",
        "customer": customer.id,
        "status": "active",
        "cancel_at_period_end": False,
        "ended_at": None,
        "metadata": {"account_id": str(account.pk)},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_NotOnStripe0001",
                    "object": "subscription_item",
                    "price": {
                        "id": catalog.pro.stripe_base_price.id,
                        "product": catalog.pro.stripe_product.id,
                    },
                    "current_period_start": now,
                    "current_period_end": now + 30 * 86400,
                }
            ],
        },
    }

    response = _post(client, webhooks.endpoint, _event("customer.subscription.updated", claimed))

    assert response.status_code == 200
    account.refresh_from_db()
    assert (account.tier, account.payment_status, account.stripe_subscription_id) == (
        catalog.free,
        "none",
        "",
    )
    assert account.cache_version == version


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event_type", "obj"),
    [
        (
            "checkout.session.completed",
            {
                "id": "cs_NotOnStripe0001",
                "object": "checkout.session",
                "mode": "subscription",
                "subscription": _UNKNOWN_SUBSCRIPTION,
            },
        ),
        (
            "invoice.paid",
            {"id": "in_NotOnStripe0001", "object": "invoice", "parent": _INVOICE_PARENT},
        ),
        (
            "invoice.payment_failed",
            {"id": "in_NotOnStripe0002", "object": "invoice", "parent": _INVOICE_PARENT},
        ),
    ],
)
def test_a_session_or_invoice_of_a_subscription_stripe_does_not_know_changes_nothing(
    account, catalog, webhooks, client, stripe_client, event_type, obj
):
    customer = stripe_client.v1.customers.create(params={"email": account.owner.email})
    version = account.cache_version
    obj = {**obj, "customer": customer.id, "client_reference_id": str(account.pk)}

    response = _post(client, webhooks.endpoint, _event(event_type, obj))

    assert response.status_code == 200
    account.refresh_from_db()
    assert (account.tier, account.payment_status, account.stripe_subscription_id) == (
        catalog.free,
        "none",
        "",
    )
    assert account.cache_version == version
