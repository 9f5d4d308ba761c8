"""Cancelling: at the period's end in the customer portal, or at once by an operator with a final
invoice. Either way the final invoice bills exactly the usage admitted while the subscription
ran, and nothing used on the free tier afterwards is ever billed.

Stripe: "Any metered usage is charged for in a final invoice when the subscription cancels at
the end of the billing period"; cancelling at once, ``invoice_now`` "will generate a final
invoice that invoices for any un-invoiced metered usage and new/pending proration invoice
items" and ``prorate`` (a credit for the unused time) defaults to false (Cancel a subscription,
https://docs.stripe.com/api/subscriptions/cancel)."""

import pytest

from tests.billing.scenarios.stories import cancel_at_period_end, cancel_now_with_invoice_now

pytestmark = pytest.mark.django_db


def test_cancel_at_period_end_bills_the_periods_usage_in_a_final_invoice(scenario):
    cancel_at_period_end(scenario)


def test_an_operator_cancelling_now_with_invoice_now_bills_the_usage_so_far(scenario):
    cancel_now_with_invoice_now(scenario)
