"""The dashboard and usage page show where this period's usage stands as a banner, once it has
crossed one of the tier's alert thresholds (and whenever calls are refused)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Tier
from portal.models import Account
from tests.factories import TierFactory, UsageAlertFactory, UsageRollupFactory


def on_tier(owner, **fields) -> Account:
    Account.objects.filter(owner=owner).update(tier=TierFactory(**fields))
    return Account.objects.get(owner=owner)


@pytest.mark.django_db
def test_no_banner_before_any_threshold(owner_client, owner):
    account = on_tier(owner, included_units=1000)
    UsageRollupFactory(account=account, units=799)

    page = owner_client.get("/dashboard/").content.decode()

    assert "usage-alert-banner" not in page


@pytest.mark.django_db
def test_a_spent_quota_is_shown_on_dashboard_and_usage_page(owner_client, owner):
    account = on_tier(owner, included_units=1000)
    UsageRollupFactory(account=account, units=1000)

    for url in ("/dashboard/", "/usage/"):
        page = owner_client.get(url).content.decode()
        assert 'data-testid="usage-alert-banner"' in page, url
        assert "You have used all your included units." in page
        assert "API calls are refused until the period renews" in page


@pytest.mark.django_db
def test_a_billed_tier_banner_names_the_overage_price(owner_client, owner):
    account = on_tier(
        owner,
        included_units=1000,
        overage_policy=Tier.OveragePolicy.BILL,
        overage_unit_price_cents=Decimal("0.1"),
    )
    UsageRollupFactory(account=account, units=1200)

    page = owner_client.get("/dashboard/").content.decode()

    assert "You are at 120% of your included units." in page
    assert "$1.00 per 1,000" in page


@pytest.mark.django_db
def test_a_bill_tier_at_its_spend_cap_is_told_calls_are_refused(owner_client, owner):
    # $1.00 of overage at 0.1 cents a unit: 1,000 units past the 1,000 included.
    account = on_tier(
        owner,
        included_units=1000,
        overage_policy=Tier.OveragePolicy.BILL,
        overage_unit_price_cents=Decimal("0.1"),
        spend_cap_cents=100,
    )
    UsageRollupFactory(account=account, units=2000)

    page = owner_client.get("/dashboard/").content.decode()

    assert "You have reached your spend cap." in page
    assert "$1.00 spend cap" in page


@pytest.mark.django_db
def test_an_opted_out_developer_still_sees_the_banner(owner_client, owner):
    account = on_tier(owner, included_units=1000)
    Account.objects.filter(pk=account.pk).update(alerts_opt_out=True)
    UsageRollupFactory(account=account, units=800)

    page = owner_client.get("/dashboard/").content.decode()

    assert "You have used 80% of your included units" in page


@pytest.mark.django_db
def test_last_periods_usage_is_not_shown(owner_client, owner):
    account = on_tier(owner, included_units=1000)
    UsageRollupFactory(account=account, units=1000, minute=account.period_start - timedelta(days=3))
    UsageAlertFactory(
        account=account,
        threshold=100,
        period_start=account.period_start - timedelta(days=31),
        created=timezone.now() - timedelta(days=31),
    )

    page = owner_client.get("/dashboard/").content.decode()

    assert "usage-alert-banner" not in page


@pytest.mark.django_db
def test_an_outsider_never_sees_the_owners_banner(outsider_client, owner):
    account = on_tier(owner, included_units=1000)
    UsageRollupFactory(account=account, units=1000)

    page = outsider_client.get("/dashboard/").content.decode()

    assert "usage-alert-banner" not in page
