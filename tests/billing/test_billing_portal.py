"""POST /billing/portal/ — "Manage billing": the Stripe customer portal, and what its actions
(switch, cancel at period end, cancel now) do to the account once Stripe's webhooks arrive."""

import pytest
import requests

from billing.stripe_api import stripe_client

PORTAL = "/billing/portal/"


def _portal_action(owner_client, action: str, **fields) -> None:
    response = owner_client.post(PORTAL)
    assert response.status_code == 303
    page = response["Location"]
    assert "/p/session/bps_" in page
    done = requests.post(
        page + "/action", data={"action": action, **fields}, allow_redirects=False, timeout=5
    )
    assert done.status_code == 303
    assert done.headers["Location"].endswith("/billing/")


@pytest.mark.django_db
def test_cancel_at_period_end_keeps_the_tier_until_stripe_ends_the_subscription(
    owner_client, subscribed, catalog, webhooks
):
    _portal_action(owner_client, "cancel_at_period_end")
    webhooks.deliver()

    subscribed.refresh_from_db()
    assert (subscribed.tier, subscribed.payment_status) == (catalog.pro, "active")
    assert subscribed.cancel_at_period_end is True
    page = owner_client.get("/billing/").content.decode()
    assert f"Your subscription ends on {subscribed.period_end:%-d %B %Y}" in page

    webhooks.emulator.advance_clock(32 * 86400)  # past the period end: Stripe cancels it
    webhooks.deliver()

    subscribed.refresh_from_db()
    assert subscribed.tier == catalog.free
    assert (subscribed.payment_status, subscribed.subscribed_tier) == ("canceled", None)
    assert subscribed.cancel_at_period_end is False
    assert subscribed.period_end is None


@pytest.mark.django_db
def test_resuming_a_cancellation_clears_the_notice(owner_client, subscribed, catalog, webhooks):
    _portal_action(owner_client, "cancel_at_period_end")
    webhooks.deliver()

    _portal_action(owner_client, "resume")
    webhooks.deliver()

    subscribed.refresh_from_db()
    assert subscribed.cancel_at_period_end is False
    assert "Your subscription ends" not in owner_client.get("/billing/").content.decode()


@pytest.mark.django_db
def test_the_portal_cancels_at_period_end_only(owner_client, subscribed):
    # Our configuration's subscription_cancel mode is at_period_end: the tier runs to the end.
    response = owner_client.post(PORTAL)
    done = requests.post(response["Location"] + "/action", data={"action": "cancel_now"}, timeout=5)

    assert done.status_code == 403  # not offered by the configuration
    subscribed.refresh_from_db()
    assert subscribed.cancel_at_period_end is False


@pytest.mark.django_db
def test_cancel_now_drops_to_the_default_tier_at_once(subscribed, catalog, webhooks):
    # As an operator does it in the Stripe Dashboard (the portal cancels at period end only).
    stripe_client().v1.subscriptions.cancel(subscribed.stripe_subscription_id)
    webhooks.deliver()

    subscribed.refresh_from_db()
    assert (subscribed.tier, subscribed.payment_status) == (catalog.free, "canceled")


@pytest.mark.django_db
def test_the_portal_offers_no_tier_switch(owner_client, subscribed, catalog):
    response = owner_client.post(PORTAL)
    done = requests.post(
        response["Location"] + "/action",
        data={"action": "switch", "product": catalog.team.stripe_product.id},
        timeout=5,
    )

    assert done.status_code == 403  # switching goes through the pricing page
    subscribed.refresh_from_db()
    assert subscribed.tier == catalog.pro


@pytest.mark.django_db
def test_without_a_stripe_customer_there_is_nothing_to_manage(owner_client, account, stripe_api):
    response = owner_client.post(PORTAL, follow=True)

    assert response.redirect_chain[-1][0] == "/pricing/"
    assert "no subscription to manage" in response.content.decode()


@pytest.mark.django_db
def test_manage_billing_needs_a_signed_in_developer_and_a_post(client, owner_client):
    response = client.__class__().post(PORTAL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert owner_client.get(PORTAL).status_code == 405
