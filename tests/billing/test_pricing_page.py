"""GET /pricing/ — the public comparison of tiers, from the tiers' data."""

from decimal import Decimal

import pytest

from billing.models import Tier
from billing.selectors import tier_default
from portal.models import Role
from tests.factories import MembershipFactory, PaidTierFactory, TierFactory


@pytest.fixture
def tiers(db):
    free = tier_default()
    pro = PaidTierFactory(
        slug="pro",
        name="Pro",
        base_price_cents=2900,
        included_units=50_000,
        rate_limit_per_minute=600,
        burst=900,
        overage_unit_price_cents=Decimal("0.1"),
        spend_cap_cents=20_000,
        scopes=["basic", "compute"],
        support_level="Email",
        sort_order=10,
    )
    TierFactory(slug="secret", name="Secret deal", is_public=False)
    return free, pro


@pytest.mark.django_db
def test_visitors_compare_public_tiers_and_are_asked_to_sign_up(client, tiers):
    page = client.get("/pricing/").content.decode()

    assert "Free" in page and "Pro" in page and "Secret deal" not in page
    assert "$29.00" in page and "/ month" in page
    assert "50,000" in page and "600" in page and "bursts of 900" in page
    assert "$1.00</strong> per 1,000 units" in page  # 0.1 cent a unit
    assert "capped at $200.00 a month" in page
    assert "basic, compute" in page
    assert "calls are refused until the next period" in page  # the free tier blocks
    assert "Sign up to upgrade" in page and "Sign up free" in page
    assert "/billing/checkout/" not in page


@pytest.mark.django_db
def test_a_developer_sees_their_tier_marked_and_can_upgrade_to_paid_ones(owner_client, tiers):
    free, _ = tiers

    page = owner_client.get("/pricing/").content.decode()

    assert page.count('data-testid="current-tier"') == 1
    assert f'data-tier="{free.slug}"' in page.split('data-testid="current-tier"')[0]
    assert 'data-testid="upgrade-pro"' in page
    assert f'data-testid="upgrade-{free.slug}"' not in page


@pytest.mark.django_db
def test_a_tier_added_in_the_admin_appears_without_code(client, tiers):
    TierFactory(
        slug="scale",
        name="Scale",
        base_price_cents=19900,
        included_units=2_000_000,
        overage_policy=Tier.OveragePolicy.BILL,
        overage_unit_price_cents=Decimal("0.02"),
        sort_order=30,
    )

    page = client.get("/pricing/").content.decode()

    assert "Scale" in page and "$199.00" in page and "2,000,000" in page


@pytest.mark.django_db
def test_a_cancelled_checkout_says_nothing_was_charged(owner_client, tiers):
    page = owner_client.get("/pricing/?checkout=cancelled").content.decode()

    assert "nothing was charged" in page


@pytest.mark.django_db
def test_a_member_who_may_not_change_the_plan_sees_prices_without_buttons(client, tiers, account):
    client.force_login(MembershipFactory(account=account, role=Role.DEVELOPER).user)

    page = client.get("/pricing/").content.decode()

    assert "$29.00" in page
    assert 'data-testid="upgrade-pro"' not in page
    assert "/billing/checkout/" not in page
    assert "does not change its plan" in page
