"""A developer an operator moved to a paid tier is told so, not offered that tier (issue 16).

The billing page said "No subscription" beside an Upgrade button, as if the tier were free and
still to be bought; nothing charges a card for a tier the admin's "Move to a tier" set.
"""

import pytest

from billing.selectors import account_tier_set_by_operator
from portal.models import Account
from portal.services import account_tier_change
from tests.factories import PaidTierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def moved(owner, admin_user):
    tier = PaidTierFactory(slug="enterprise", name="Enterprise")
    account_tier_change(
        account=owner.owned_accounts.get(), tier=tier, actor=admin_user, reason="Pilot"
    )
    return Account.objects.get(owner=owner)


def test_the_billing_page_says_the_operator_set_the_tier(owner_client, moved):
    page = owner_client.get("/billing/").content.decode()

    assert "Your tier, Enterprise, was set by the operator." in page
    assert "no card is charged" in page
    assert "No subscription<" not in page
    assert ">Upgrade<" not in page
    assert ">Compare plans<" in page


def test_the_dashboard_says_the_same(owner_client, moved):
    page = owner_client.get("/dashboard/").content.decode()

    assert "Set by the operator" in page
    assert "No subscription" not in page


def test_pricing_offers_a_subscription_not_an_upgrade(owner_client, moved):
    PaidTierFactory(slug="pro", name="Pro")

    page = owner_client.get("/pricing/").content.decode()

    assert "Subscribe to Pro" in page
    assert "Upgrade to Pro" not in page


def test_a_free_developer_is_still_offered_the_upgrade(owner_client, owner):
    page = owner_client.get("/billing/").content.decode()

    assert not account_tier_set_by_operator(owner.owned_accounts.get())
    assert "No subscription" in page
    assert ">Upgrade<" in page


def test_a_subscriber_is_not_taken_for_an_operators_move(moved):
    Account.objects.filter(pk=moved.pk).update(payment_status=Account.PaymentStatus.ACTIVE)

    assert not account_tier_set_by_operator(Account.objects.get(pk=moved.pk))
