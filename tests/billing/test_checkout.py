"""POST /billing/checkout/ — "Upgrade": Stripe Checkout, then the webhook moves the account."""

import pytest
import requests
from django.urls import reverse

from tests.billing.conftest import checkout_and_pay
from tests.factories import ApiKeyFactory, PaidTierFactory

CHECKOUT = "/billing/checkout/"


def _me(client, key) -> dict:
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {key.plaintext}"})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_upgrade_through_checkout_changes_the_tier_and_the_api_limits(
    owner_client, account, catalog, webhooks, client
):
    key = ApiKeyFactory(account=account)
    before = _me(client, key)  # the API has now cached this key's principal (free limits)
    assert (before["tier"]["slug"], before["limits"]["rate_limit_per_minute"]) == (
        catalog.free.slug,
        catalog.free.rate_limit_per_minute,
    )

    back_to = checkout_and_pay(owner_client, catalog.pro)
    webhooks.deliver()

    assert back_to == "http://testserver" + reverse("billing:overview") + "?checkout=success"
    account.refresh_from_db()
    assert account.tier == catalog.pro == account.subscribed_tier
    assert account.payment_status == "active"
    assert account.stripe_subscription_id.startswith("sub_")
    assert account.period_end > account.period_start
    after = _me(client, key)
    assert after["tier"]["slug"] == "pro"
    assert after["limits"]["rate_limit_per_minute"] == 600
    assert after["limits"]["quota_units"] == 50_000


@pytest.mark.django_db
def test_the_tier_changes_only_when_the_webhook_arrives(owner_client, account, catalog, webhooks):
    back_to = checkout_and_pay(owner_client, catalog.pro)

    page = owner_client.get(back_to)
    account.refresh_from_db()
    assert account.tier == catalog.free
    assert 'http-equiv="refresh"' in page.content.decode()
    assert "switching you to Pro" in page.content.decode()

    webhooks.deliver()
    page = owner_client.get(back_to)
    assert 'http-equiv="refresh"' not in page.content.decode()
    assert "you are now on Pro" in page.content.decode()


@pytest.mark.django_db
def test_the_checkout_session_sells_the_base_and_the_metered_price(
    owner_client, account, catalog, stripe_client, settings
):
    response = owner_client.post(CHECKOUT, {"tier": "pro"})

    assert response.status_code == 303
    session_id = response["Location"].rsplit("/", 1)[-1]
    session = stripe_client.v1.checkout.sessions.retrieve(session_id)
    lines = stripe_client.v1.checkout.sessions.line_items.list(session_id)
    assert [(line.price.id, line.quantity) for line in lines.data] == [
        (catalog.pro.stripe_base_price.id, 1),
        (catalog.pro.stripe_metered_price.id, None),
    ]
    assert session.mode == "subscription"
    assert session.client_reference_id == str(account.pk)
    assert dict(session.metadata) == {"account_id": str(account.pk), "tier": "pro"}
    assert session.success_url == f"{settings.SITE_URL}/billing/?checkout=success"
    assert session.cancel_url == f"{settings.SITE_URL}/pricing/?checkout=cancelled"
    account.refresh_from_db()
    customer = stripe_client.v1.customers.retrieve(session.customer)
    assert customer.id == account.stripe_customer.id
    assert customer.metadata["account_id"] == str(account.pk)
    assert customer.email == account.email


@pytest.mark.django_db
def test_a_second_upgrade_reuses_the_stripe_customer(owner_client, account, catalog, stripe_api):
    owner_client.post(CHECKOUT, {"tier": "pro"})
    owner_client.post(CHECKOUT, {"tier": "team"})

    assert stripe_api.request_count("/v1/customers", method="POST") == 1


@pytest.mark.django_db
def test_a_subscribed_developer_switches_tier_from_the_next_minute(
    owner_client, subscribed, catalog
):
    response = owner_client.post(CHECKOUT, {"tier": "team"}, follow=True)

    assert response.redirect_chain[-1][0] == "/billing/"
    page = response.content.decode()
    assert "Switching to Team at" in page
    assert "billed at Pro" in page


@pytest.mark.django_db
def test_upgrading_to_the_tier_already_paid_for_goes_back_to_billing(
    owner_client, subscribed, catalog
):
    response = owner_client.post(CHECKOUT, {"tier": "pro"}, follow=True)

    assert response.redirect_chain[-1][0] == "/billing/"
    assert "already subscribed to Pro" in response.content.decode()


@pytest.mark.django_db
def test_a_private_or_unknown_tier_cannot_be_bought(owner_client, account, catalog):
    PaidTierFactory(slug="custom-deal", is_public=False)

    assert owner_client.post(CHECKOUT, {"tier": "custom-deal"}).status_code == 404
    assert owner_client.post(CHECKOUT, {"tier": "nope"}).status_code == 404
    assert owner_client.post(CHECKOUT, {}).status_code == 404


@pytest.mark.django_db
def test_a_tier_not_pushed_to_stripe_says_so(owner_client, account, stripe_api):
    PaidTierFactory(slug="new-plan", name="New plan")

    response = owner_client.post(CHECKOUT, {"tier": "new-plan"}, follow=True)

    assert response.redirect_chain[-1][0] == "/pricing/"
    assert "New plan is not on sale yet" in response.content.decode()


@pytest.mark.django_db
def test_stripe_down_is_a_message_not_an_error_page(owner_client, account, catalog, stripe_api):
    stripe_api.inject_fault("/v1/checkout/sessions", status=500, count=1)

    response = owner_client.post(CHECKOUT, {"tier": "pro"}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/pricing/"
    assert "nothing was charged" in response.content.decode()
    account.refresh_from_db()
    assert account.tier == catalog.free


@pytest.mark.django_db
def test_checkout_needs_a_signed_in_developer_and_a_post(client, owner_client, catalog):
    anonymous = client.__class__().post(CHECKOUT, {"tier": "pro"})
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")
    assert owner_client.get(CHECKOUT).status_code == 405


@pytest.mark.django_db
def test_a_declined_card_leaves_the_account_as_it_was(owner_client, account, catalog, webhooks):
    response = owner_client.post(CHECKOUT, {"tier": "pro"})
    account.refresh_from_db()
    webhooks.emulator.set_card_declines(account.stripe_customer.id, True)

    declined = requests.post(response["Location"] + "/pay", allow_redirects=False, timeout=5)
    webhooks.deliver()

    assert declined.status_code == 402
    account.refresh_from_db()
    assert (account.tier, account.payment_status) == (catalog.free, "none")
