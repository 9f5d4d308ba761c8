"""The spend cap is stated as what it is: the tier's, in money (issue 16).

Enterprise promised "a spend cap you choose", which no developer can set, and the usage page
drew the cap in units ("Spend cap 4,000,000"), not the money it caps.
"""

import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone

from metering.alerts import usage_alert_email
from portal.management.commands.seed_demo import DEMO_TIERS
from portal.models import Account
from tests.factories import PaidTierFactory, UsageAlertFactory, UsageRollupFactory

pytestmark = pytest.mark.django_db

# The demo's Enterprise: $1,000 of overage at 0.05 cents a unit is 2,000,000 units past the
# 2,000,000 included.
CAP_CENTS = 100_000

correction = importlib.import_module("portal.migrations.0005_enterprise_demo_no_chosen_spend_cap")


@pytest.fixture
def capped(owner):
    tier = PaidTierFactory(
        slug="capped",
        name="Enterprise",
        included_units=2_000_000,
        overage_unit_price_cents=Decimal("0.05"),
        spend_cap_cents=CAP_CENTS,
    )
    Account.objects.filter(owner=owner).update(tier=tier)
    return tier


def test_no_demo_tier_promises_a_cap_the_developer_chooses():
    for tier in DEMO_TIERS:
        assert "you choose" not in str(tier["description"]), tier["slug"]


def test_an_install_seeded_with_the_promise_has_it_corrected_by_the_migration():
    promised = PaidTierFactory(slug="enterprise", description=correction.PROMISE)
    own_tier = PaidTierFactory(slug="custom", description=correction.PROMISE)

    correction.correct(apps, None)

    promised.refresh_from_db()
    own_tier.refresh_from_db()
    assert promised.description == "High volume with a monthly spend cap and priority support."
    # Only the demo's Enterprise row is the demo's text; an operator's tier is theirs.
    assert own_tier.description == correction.PROMISE


def test_an_operators_own_enterprise_description_is_left_alone():
    tier = PaidTierFactory(slug="enterprise", description="A cap we agree on together.")

    correction.correct(apps, None)

    tier.refresh_from_db()
    assert tier.description == "A cap we agree on together."


def test_the_usage_page_shows_the_cap_in_money(owner_client, owner, capped):
    UsageRollupFactory(account=owner.owned_accounts.get(), units=2_100_000)

    page = owner_client.get("/usage/").content.decode()

    assert "Spend cap $1,000.00" in page
    assert "Spend cap 4,000,000" not in page
    assert "the tier's spend cap of $1,000.00 (2,000,000 units)" in page


def test_the_alert_email_names_the_cap_in_money(owner, capped):
    account = Account.objects.get(owner=owner)
    alert = UsageAlertFactory(
        account=account,
        threshold=120,
        units_at_claim=2_400_000,
        period_start=account.current_period(timezone.now())[0],
    )

    message = usage_alert_email(alert)

    assert "spend cap of $1,000.00 stops calls after 2,000,000 units" in str(message.body)
