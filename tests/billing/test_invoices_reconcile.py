"""billing.services.invoices_reconcile: invoices whose webhooks were lost reach the billing page."""

import pytest
from djstripe.models import Invoice

from billing.services.reconcile import invoices_reconcile
from tests.billing.conftest import checkout_and_pay

pytestmark = pytest.mark.django_db


def test_an_invoice_whose_webhooks_were_lost_is_stored_and_shown(
    owner_client, account, catalog, webhooks
):
    checkout_and_pay(owner_client, catalog.pro)
    webhooks.deliver()
    Invoice.objects.all().delete()  # as if invoice.created / invoice.paid never arrived

    stored = invoices_reconcile()

    account.refresh_from_db()
    [invoice] = Invoice.objects.filter(customer__id=account.stripe_customer.id)
    assert stored == [invoice.id]
    assert invoice.status == "paid"
    page = owner_client.get("/billing/").content.decode()
    assert invoice.number in page


def test_invoices_in_step_are_left_alone(owner_client, account, catalog, webhooks):
    checkout_and_pay(owner_client, catalog.pro)
    webhooks.deliver()

    assert invoices_reconcile() == []
    assert invoices_reconcile(account_ids=[account.pk]) == []
