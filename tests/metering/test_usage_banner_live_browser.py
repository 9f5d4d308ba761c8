"""In a browser: at 100 % of the quota the dashboard says calls are refused, although the last
alert sent was the 80 % one (issue 16)."""

import re

import pytest

from portal.models import Account
from tests.factories import PASSWORD, TierFactory, UsageAlertFactory, UsageRollupFactory


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_banner_says_refused_at_the_quota(live_server, page, owner, screenshot):
    Account.objects.filter(owner=owner).update(tier=TierFactory(included_units=1000))
    account = Account.objects.get(owner=owner)
    UsageAlertFactory(account=account, threshold=80, status="sent")
    UsageRollupFactory(account=account, units=1000)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))

    banner = page.get_by_test_id("usage-alert-banner")
    text = banner.inner_text()
    assert "You have used all your included units." in text
    assert "API calls are refused" in text
    assert "80%" not in text
    assert "error" in (banner.get_attribute("class") or "")
    screenshot(page, "usage-banner-at-quota")
