"""The dashboard and usage page show the current period's latest usage alert as a banner."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Tier
from portal.models import Account
from tests.factories import TierFactory, UsageAlertFactory


@pytest.mark.django_db
def test_no_banner_before_any_threshold(owner_client):
    page = owner_client.get("/dashboard/").content.decode()

    assert "usage-alert-banner" not in page


@pytest.mark.django_db
def test_the_highest_threshold_of_the_period_is_shown_on_dashboard_and_usage_page(
    owner_client, owner
):
    account = owner.account
    UsageAlertFactory(account=account, threshold=80, status="sent")
    UsageAlertFactory(account=account, threshold=100, status="sent")

    for url in ("/dashboard/", "/usage/"):
        page = owner_client.get(url).content.decode()
        assert 'data-testid="usage-alert-banner"' in page, url
        assert "You have used all your included units." in page
        assert "API calls are refused until the period renews" in page


@pytest.mark.django_db
def test_a_billed_tier_banner_names_the_overage_price(owner_client, owner):
    tier = TierFactory(
        overage_policy=Tier.OveragePolicy.BILL, overage_unit_price_cents=Decimal("0.1")
    )
    Account.objects.filter(owner=owner).update(tier=tier)
    UsageAlertFactory(account=owner.account, threshold=120, status="sent")

    page = owner_client.get("/dashboard/").content.decode()

    assert "You are at 120% of your included units." in page
    assert "$1.00 per 1,000" in page


@pytest.mark.django_db
def test_an_opted_out_alert_still_shows_as_a_banner(owner_client, owner):
    UsageAlertFactory(account=owner.account, threshold=80, status="skipped")

    page = owner_client.get("/dashboard/").content.decode()

    assert "You have used 80% of your included units" in page


@pytest.mark.django_db
def test_last_periods_alert_is_not_shown(owner_client, owner):
    UsageAlertFactory(
        account=owner.account,
        threshold=120,
        period_start=owner.account.period_start - timedelta(days=31),
        created=timezone.now() - timedelta(days=31),
    )

    page = owner_client.get("/dashboard/").content.decode()

    assert "usage-alert-banner" not in page


@pytest.mark.django_db
def test_an_outsider_never_sees_the_owners_banner(outsider_client, owner):
    UsageAlertFactory(account=owner.account, threshold=100, status="sent")

    page = outsider_client.get("/dashboard/").content.decode()

    assert "usage-alert-banner" not in page
