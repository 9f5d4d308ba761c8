"""manage.py create_webhook_endpoint (billing.services.webhook_endpoint_ensure)."""

from io import StringIO

import pytest
from django.core.management import call_command
from djstripe.models import WebhookEndpoint

from billing.services.webhook_endpoint import WEBHOOK_EVENTS
from tests.billing.conftest import checkout_and_pay


@pytest.mark.django_db
def test_the_endpoint_is_created_once_with_its_secret_and_the_url_printed(
    stripe_api, stripe_client
):
    out = StringIO()

    call_command("create_webhook_endpoint", "--base-url", "https://portal.example.com", stdout=out)
    call_command("create_webhook_endpoint", "--base-url", "https://portal.example.com", stdout=out)

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.url == f"https://portal.example.com/stripe/webhook/{endpoint.djstripe_uuid}/"
    assert endpoint.secret.startswith("whsec_")
    assert f"URL     {endpoint.url}" in out.getvalue()
    assert "Already registered" in out.getvalue()
    remote = stripe_client.v1.webhook_endpoints.list().data
    assert [e.url for e in remote] == [endpoint.url]
    assert set(remote[0].enabled_events) == set(WEBHOOK_EVENTS)


@pytest.mark.django_db
def test_an_endpoint_stripe_forgot_is_replaced(stripe_api, stripe_client):
    """`make run` restarts the emulator, which forgets its endpoints; our row must not linger
    with a secret nobody signs with any more."""
    call_command("create_webhook_endpoint", stdout=StringIO())
    old = WebhookEndpoint.objects.get()
    stripe_api.reset()

    call_command("create_webhook_endpoint", stdout=StringIO())

    new = WebhookEndpoint.objects.get()
    assert new.id != old.id and new.secret != old.secret
    assert [e.id for e in stripe_client.v1.webhook_endpoints.list().data] == [new.id]


@pytest.mark.django_db
def test_events_reach_the_portal_and_are_verified_with_the_stored_secret(
    owner_client, account, catalog, webhooks
):
    checkout_and_pay(owner_client, catalog.pro)

    results = webhooks.deliver()

    assert results and all(r["status"] == 200 for r in results)
    account.refresh_from_db()
    assert account.tier == catalog.pro
