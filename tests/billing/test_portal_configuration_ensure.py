"""billing.services.checkout.portal_configuration_ensure: the customer portal's configuration,
created through the API and kept in step with the paid tiers (Stripe's portal has none until
one is saved; see docs/stripe.md)."""

from decimal import Decimal

import pytest

from billing.services.catalog import tiers_sync_to_stripe
from billing.services.checkout import is_our_portal_configuration, portal_configuration_ensure
from billing.stripe_api import stripe_client
from tests.factories import PaidTierFactory

pytestmark = pytest.mark.django_db


def _ours() -> list:
    return [
        configuration
        for configuration in stripe_client().v1.billing_portal.configurations.list().data
        if is_our_portal_configuration(configuration)
    ]


def test_it_offers_each_paid_tier_with_its_base_and_metered_price(catalog):
    configuration_id = portal_configuration_ensure()

    (configuration,) = _ours()
    assert configuration.id == configuration_id
    update = configuration.features.subscription_update
    assert update.enabled and update.default_allowed_updates == ["price"]
    offered = {entry.product: set(entry.prices) for entry in update.products}
    assert offered == {
        tier.stripe_product.id: {tier.stripe_base_price.id, tier.stripe_metered_price.id}
        for tier in (catalog.pro, catalog.team)
    }
    assert configuration.features.subscription_cancel.mode == "at_period_end"


def test_calling_it_again_reuses_the_configuration_and_follows_new_tiers(catalog):
    first = portal_configuration_ensure()
    scale = PaidTierFactory(slug="scale", name="Scale", overage_unit_price_cents=Decimal("0.05"))
    tiers_sync_to_stripe(tiers=[scale])

    assert portal_configuration_ensure() == first
    (configuration,) = _ours()
    products = {entry.product for entry in configuration.features.subscription_update.products}
    scale.refresh_from_db()
    assert scale.stripe_product is not None and scale.stripe_product.id in products
