"""Customer portal configurations: what a portal session lets a customer do, and the default one.
"The Customer portal configuration object",
https://docs.stripe.com/api/customer_portal/configurations/object."""

from __future__ import annotations

import pytest
import requests
import stripe

from devtools.stripe_emulator.resources.portal import NO_DEFAULT_CONFIGURATION


@pytest.fixture
def team(catalog, stripe_client):
    """A second product to switch to: a $99 base price and a metered price, plus a price of it
    the portal does not offer."""
    product = stripe_client.v1.products.create(params={"name": "Team"})
    base = stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "product": product.id,
            "unit_amount": 9900,
            "recurring": {"interval": "month"},
        }
    )
    metered = stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "product": product.id,
            "unit_amount_decimal": "0.2",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": catalog.meter.id},
        }
    )
    return product, base, metered


def _features(catalog, team, **update):
    product, base, metered = team
    return {
        "subscription_update": {
            "enabled": True,
            "default_allowed_updates": ["price"],
            "products": [
                {"product": catalog.product.id, "prices": [catalog.base.id, catalog.metered.id]},
                {"product": product.id, "prices": [base.id, metered.id]},
            ],
            **update,
        },
        "subscription_cancel": {"enabled": True, "mode": "immediately"},
        "invoice_history": {"enabled": True},
    }


def test_a_session_needs_a_configuration_or_a_saved_default(catalog, stripe_client, team):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.billing_portal.sessions.create(params={"customer": catalog.customer.id})
    assert caught.value.http_status == 400
    assert caught.value.user_message == NO_DEFAULT_CONFIGURATION
    created = stripe_client.v1.billing_portal.configurations.create(
        params={"features": _features(catalog, team)}
    )
    assert created.is_default is False  # only the Dashboard's configuration is the default
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.billing_portal.sessions.create(params={"customer": catalog.customer.id})
    session = stripe_client.v1.billing_portal.sessions.create(
        params={"customer": catalog.customer.id, "configuration": created.id}
    )
    assert session.configuration == created.id


def test_the_saved_default_is_used_without_a_configuration(
    catalog, stripe_client, stripe_emulator, team
):
    saved = stripe_emulator.save_portal_defaults(
        features=_features(catalog, team), default_return_url="http://portal.test/billing"
    )
    assert saved["is_default"] is True
    session = stripe_client.v1.billing_portal.sessions.create(
        params={"customer": catalog.customer.id}
    )
    assert (session.configuration, session.return_url) == (
        saved["id"],
        "http://portal.test/billing",
    )
    listed = stripe_client.v1.billing_portal.configurations.list(params={"is_default": True})
    assert [c.id for c in listed.data] == [saved["id"]]
    over_http = requests.post(
        f"{stripe_emulator.url}/_emulator/billing_portal/default",
        json={"features": {"invoice_history": {"enabled": False}}},
        timeout=5,
    ).json()
    assert over_http["id"] == saved["id"]
    assert over_http["features"]["invoice_history"]["enabled"] is False


def test_configuration_fields_and_checks(catalog, stripe_client, team):
    product, base, _ = team
    created = stripe_client.v1.billing_portal.configurations.create(
        params={
            "business_profile": {"headline": "Meterdesk billing"},
            "default_return_url": "http://portal.test/billing",
            "features": _features(catalog, team, proration_behavior="create_prorations"),
            "metadata": {"managed_by": "meterdesk"},
        }
    )
    assert created.object == "billing_portal.configuration" and created.active is True
    update = created.features.subscription_update
    assert (update.proration_behavior, update.products[1].prices) == (
        "create_prorations",
        [base.id, team[2].id],
    )
    assert created.features.payment_method_update.enabled is False
    fetched = stripe_client.v1.billing_portal.configurations.retrieve(created.id)
    assert fetched.business_profile.headline == "Meterdesk billing"
    updated = stripe_client.v1.billing_portal.configurations.update(
        created.id, params={"active": False, "features": {"invoice_history": {"enabled": False}}}
    )
    assert updated.active is False and updated.features.subscription_update.enabled is True
    with pytest.raises(stripe.InvalidRequestError) as inactive:
        stripe_client.v1.billing_portal.sessions.create(
            params={"customer": catalog.customer.id, "configuration": created.id}
        )
    assert inactive.value.param == "configuration"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe_client.v1.billing_portal.configurations.create(
            params={"features": {"subscription_update": {"enabled": True}}}
        )
    assert missing.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError) as foreign:
        stripe_client.v1.billing_portal.configurations.create(
            params={
                "features": {
                    "subscription_update": {
                        "enabled": True,
                        "default_allowed_updates": ["price"],
                        "products": [{"product": product.id, "prices": [catalog.base.id]}],
                    }
                }
            }
        )
    assert foreign.value.param == "features[subscription_update][products][0][prices][0]"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        stripe_client.v1.billing_portal.configurations.create(
            params={"features": {"invoice_history": {"enabled": True}}, "colour": "red"}
        )
    assert unknown.value.code == "parameter_unknown"


def test_the_portal_offers_only_the_listed_prices(
    catalog, stripe_client, stripe_emulator, subscribe, team
):
    sub = subscribe(catalog)
    product, base, metered = team
    hidden = stripe_client.v1.products.create(params={"name": "Enterprise"})
    stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "product": hidden.id,
            "unit_amount": 50000,
            "recurring": {"interval": "month"},
        }
    )
    configuration = stripe_client.v1.billing_portal.configurations.create(
        params={"features": _features(catalog, team)}
    )
    portal = stripe_client.v1.billing_portal.sessions.create(
        params={"customer": catalog.customer.id, "configuration": configuration.id}
    )
    page = requests.get(portal.url, timeout=5).text
    assert "Switch to Team" in page and "Enterprise" not in page
    assert "Switch to Pro" not in page  # the current plan
    assert "Cancel now" in page and "Cancel at period end" not in page
    assert "Update card" not in page  # payment_method_update is off
    action = portal.url + "/action"
    refused = requests.post(
        action, data={"action": "switch", "product": hidden.id}, allow_redirects=False, timeout=5
    )
    assert refused.status_code == 403
    assert [i.price.id for i in stripe_client.v1.subscriptions.retrieve(sub.id)["items"].data] == [
        catalog.base.id,
        catalog.metered.id,
    ]
    requests.post(
        action, data={"action": "switch", "product": product.id}, allow_redirects=False, timeout=5
    )
    assert [i.price.id for i in stripe_client.v1.subscriptions.retrieve(sub.id)["items"].data] == [
        base.id,
        metered.id,
    ]


@pytest.mark.parametrize(
    ("behavior", "billed"), [("none", []), ("create_prorations", [(2000, 500)])]
)
def test_a_portal_switch_bills_the_old_usage_as_the_configuration_prorates(
    catalog, stripe_client, stripe_emulator, subscribe, team, behavior, billed
):
    subscribe(catalog)
    stripe_client.v1.billing.meter_events.create(
        params={
            "event_name": "api_calls",
            "payload": {"stripe_customer_id": catalog.customer.id, "value": "2000"},
        }
    )
    stripe_emulator.advance_clock(3600)
    configuration = stripe_client.v1.billing_portal.configurations.create(
        params={"features": _features(catalog, team, proration_behavior=behavior)}
    )
    portal = stripe_client.v1.billing_portal.sessions.create(
        params={"customer": catalog.customer.id, "configuration": configuration.id}
    )
    requests.post(
        portal.url + "/action",
        data={"action": "switch", "product": team[0].id},
        allow_redirects=False,
        timeout=5,
    )
    pending = stripe_client.v1.invoice_items.list(params={"pending": True}).data
    assert [(i.quantity, i.amount) for i in pending] == billed
