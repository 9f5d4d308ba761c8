"""Shared set-up for the Stripe emulator's own tests: a tier catalog like Meterdesk's."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests
import stripe


@dataclass
class Catalog:
    customer: stripe.Customer
    product: stripe.Product
    meter: stripe.billing.Meter
    base: stripe.Price
    metered: stripe.Price


@pytest.fixture
def catalog(stripe_client) -> Catalog:
    """One customer; a "Pro" product with a $29 base price and a graduated metered price:
    1,000 included calls, then 0.5 cent per call."""
    client = stripe_client
    customer = client.v1.customers.create(params={"email": "dev@example.com"})
    product = client.v1.products.create(params={"name": "Pro"})
    meter = client.v1.billing.meters.create(
        params={
            "display_name": "API calls",
            "event_name": "api_calls",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )
    base = client.v1.prices.create(
        params={
            "currency": "usd",
            "product": product.id,
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
            "lookup_key": "pro_base",
        }
    )
    metered = client.v1.prices.create(
        params={
            "currency": "usd",
            "product": product.id,
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [
                {"up_to": 1000, "unit_amount": 0},
                {"up_to": "inf", "unit_amount_decimal": "0.5"},
            ],
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    return Catalog(customer, product, meter, base, metered)


@pytest.fixture
def subscribe(stripe_client):
    """Complete a Checkout Session through its hosted page; returns the subscription."""

    def complete(catalog: Catalog, customer_id: str | None = None):
        session = stripe_client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer_id or catalog.customer.id,
                "line_items": [
                    {"price": catalog.base.id, "quantity": 1},
                    {"price": catalog.metered.id},
                ],
                "success_url": "http://portal.test/ok?session={CHECKOUT_SESSION_ID}",
            }
        )
        answer = requests.post(session.url + "/pay", allow_redirects=False, timeout=5)
        assert answer.status_code == 303, answer.text
        session = stripe_client.v1.checkout.sessions.retrieve(session.id)
        return stripe_client.v1.subscriptions.retrieve(session.subscription)

    return complete
