"""A Pro developer's Stripe customer is deleted in the Dashboard mid-period: the next hourly report
is accepted by Stripe's create call and refused afterwards (``meter_event_customer_not_found``,
told by the thin event ``v1.billing.meter.error_report_triggered``); the admin shows the report
rejected. The developer subscribes again (Checkout finds the old customer gone and makes a new
one), and the operator re-sends the account's rejected reports from the admin. Every unit the
developer was admitted on Pro is invoiced exactly once across the two subscriptions, to the cent.

Stripe: deleting a customer "also immediately cancels any active subscriptions on the customer"
(Delete a customer, https://docs.stripe.com/api/customers/delete); events for an unknown
customer are refused asynchronously ("Record usage for billing with the API",
https://docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api). A new
subscription's metered price bills usage dated from its start only ("Manage your usage-based
billing setup", https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup):
the re-sent report is dated at the new subscription's start (billing.services.reports,
``_billed_from``)."""

import pytest

from tests.billing.scenarios.stories import deleted_customer_repaired

pytestmark = pytest.mark.django_db


def test_a_report_for_a_deleted_customer_is_repaired_onto_the_new_subscription(
    scenario, admin_client, admin_user
):
    deleted_customer_repaired(scenario, admin_client, admin_user)
