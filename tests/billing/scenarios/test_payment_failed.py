"""The renewal payment fails: the account keeps Pro through the grace period
(billing/services/grace.py), drops to the free tier after it, and is restored by itself when the
developer pays the open invoice. The failed invoice is the one that gets paid: the period's usage
is billed once, and the usage of the next period (while the payment was due) on its own invoice.

Stripe: a failed renewal leaves the invoice open and the subscription ``past_due`` until the
invoice is paid ("How subscriptions work > Payment status",
https://docs.stripe.com/billing/subscriptions/overview#payment-status)."""

import pytest

from tests.billing.scenarios.stories import failed_renewal_paid_after_grace

pytestmark = pytest.mark.django_db


def test_a_failed_renewal_paid_after_the_grace_period_bills_the_usage_once(scenario, mailoutbox):
    failed_renewal_paid_after_grace(scenario, mailoutbox)
