"""billing.services.checkout.account_stripe_customer_email_sync, queued when an organisation's
primary owner changes: the Stripe customer takes the new owner's email (against the emulator).
Update a customer, https://docs.stripe.com/api/customers/update: "Any parameters not provided
will be left unchanged"."""

import pytest

from billing.services.checkout import (
    account_stripe_customer_email_sync,
    account_stripe_customer_ensure,
)
from portal.models import Role
from portal.organisations import membership_remove, ownership_transfer
from tests.factories import MembershipFactory


@pytest.fixture
def customer(account, catalog, stripe_api):
    return account_stripe_customer_ensure(account=account)


@pytest.mark.django_db
def test_a_transfer_gives_the_stripe_customer_the_new_owners_email(
    account, customer, stripe_client, django_capture_on_commit_callbacks
):
    successor = MembershipFactory(account=account, role=Role.ADMIN)

    with django_capture_on_commit_callbacks(execute=True):
        ownership_transfer(account=account, to=successor, actor=account.owner)

    on_stripe = stripe_client.v1.customers.retrieve(customer.id)
    assert on_stripe.email == successor.user.email
    # Nothing else about the customer moved: still this organisation's.
    assert on_stripe.metadata["account_id"] == str(account.pk)
    customer.refresh_from_db()
    assert customer.email == successor.user.email


@pytest.mark.django_db
def test_the_primary_owner_leaving_hands_the_email_to_the_next_owner(
    account, customer, stripe_client, django_capture_on_commit_callbacks
):
    first_owner = account.owner
    co_owner = MembershipFactory(account=account, role=Role.OWNER)
    leaving = account.memberships.get(user=first_owner)

    with django_capture_on_commit_callbacks(execute=True):
        membership_remove(membership=leaving, actor=first_owner, actor_membership=leaving)

    assert stripe_client.v1.customers.retrieve(customer.id).email == co_owner.user.email


@pytest.mark.django_db
def test_no_customer_yet_sends_nothing(account, stripe_api):
    assert account_stripe_customer_email_sync(account=account) is None
    assert stripe_api.request_count("/v1/customers", method="POST") == 0


@pytest.mark.django_db
def test_a_customer_stripe_no_longer_knows_is_left_for_checkout_to_replace(
    account, customer, stripe_client
):
    stripe_client.v1.customers.delete(customer.id)
    MembershipFactory(account=account, role=Role.OWNER)
    account.owner = account.memberships.exclude(user=account.owner).get().user
    account.save(update_fields=["owner"])

    assert account_stripe_customer_email_sync(account=account) is None
