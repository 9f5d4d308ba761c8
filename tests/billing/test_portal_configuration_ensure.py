"""billing.services.checkout.portal_configuration_ensure: the customer portal's configuration,
created through the API and kept as the product needs it (Stripe's portal has none until one
is saved; see docs/stripe.md)."""

import pytest

from billing.services.checkout import is_our_portal_configuration, portal_configuration_ensure
from billing.stripe_api import stripe_client

pytestmark = pytest.mark.django_db


def _ours() -> list:
    return [
        configuration
        for configuration in stripe_client().v1.billing_portal.configurations.list().data
        if is_our_portal_configuration(configuration)
    ]


def test_it_offers_card_invoices_and_cancelling_at_the_period_end_but_no_switching(catalog):
    configuration_id = portal_configuration_ensure()

    (configuration,) = _ours()
    assert configuration.id == configuration_id
    features = configuration.features
    assert features.payment_method_update.enabled and features.invoice_history.enabled
    assert features.subscription_cancel.enabled
    assert features.subscription_cancel.mode == "at_period_end"
    # Switching goes through the pricing page, which reports the old tier's usage first.
    assert features.subscription_update.enabled is False


def test_calling_it_again_reuses_the_configuration_and_repairs_an_edit(catalog):
    first = portal_configuration_ensure()
    stripe_client().v1.billing_portal.configurations.update(
        first, params={"features": {"subscription_cancel": {"mode": "immediately"}}}
    )

    assert portal_configuration_ensure() == first
    (configuration,) = _ours()
    assert configuration.features.subscription_cancel.mode == "at_period_end"
