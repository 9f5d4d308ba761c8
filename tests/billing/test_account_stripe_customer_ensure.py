"""billing.services.checkout.account_stripe_customer_ensure: the account's Stripe customer,
created once, even when Stripe answers 500 (Upgrade on the pricing page, against the emulator)."""

import pytest
from django.urls import reverse

from billing.services.checkout import account_stripe_customer_ensure

CHECKOUT = "/billing/checkout/"
CUSTOMERS = "/v1/customers"


def _customers(client) -> list:
    return client.v1.customers.list(params={"limit": 100}).data


@pytest.mark.django_db
def test_a_500_on_creating_the_customer_does_not_block_the_next_upgrade(
    owner_client, account, catalog, stripe_api, stripe_client
):
    """Stripe replays a saved 500 for the same Idempotency-Key for 24 hours (Idempotent
    requests, https://docs.stripe.com/api/idempotent_requests): pressing Upgrade again must
    not send the failed request's key again, nor create a second customer."""
    stripe_api.inject_fault(CUSTOMERS, status=500, count=1, method="POST")
    failed = owner_client.post(CHECKOUT, {"tier": "pro"})
    assert failed.status_code == 302 and failed["Location"] == reverse("billing:pricing")

    again = owner_client.post(CHECKOUT, {"tier": "pro"})

    assert again.status_code == 303
    account.refresh_from_db()
    assert account.stripe_customer is not None
    assert [customer.id for customer in _customers(stripe_client)] == [account.stripe_customer.id]
    session = stripe_client.v1.checkout.sessions.retrieve(again["Location"].rsplit("/", 1)[-1])
    assert session.customer == account.stripe_customer.id


@pytest.mark.django_db
def test_a_customer_created_behind_a_500_is_found_not_created_again(
    owner_client, account, catalog, stripe_api, stripe_client
):
    """Stripe created the customer and still answered 500: the next Upgrade finds it by the
    owner's email and our account id, and Checkout sells to that one customer."""
    stripe_api.inject_fault(CUSTOMERS, status=500, count=1, method="POST", apply=True)
    owner_client.post(CHECKOUT, {"tier": "pro"})
    [created_behind_the_500] = _customers(stripe_client)
    account.refresh_from_db()
    assert account.stripe_customer is None

    again = owner_client.post(CHECKOUT, {"tier": "pro"})

    assert again.status_code == 303
    account.refresh_from_db()
    assert account.stripe_customer is not None
    assert account.stripe_customer.id == created_behind_the_500.id
    assert account.stripe_customer.subscriber == account.owner
    assert len(_customers(stripe_client)) == 1
    assert stripe_api.request_count(CUSTOMERS, method="POST") == 1


@pytest.mark.django_db
def test_another_accounts_customer_with_the_same_email_is_not_taken(
    account, stripe_api, stripe_client
):
    theirs = stripe_client.v1.customers.create(
        params={"email": account.owner.email, "metadata": {"account_id": "someone-else"}}
    )

    customer = account_stripe_customer_ensure(account=account)

    assert customer.id != theirs.id
    assert len(_customers(stripe_client)) == 2
    assert stripe_client.v1.customers.retrieve(customer.id).metadata["account_id"] == str(
        account.pk
    )
