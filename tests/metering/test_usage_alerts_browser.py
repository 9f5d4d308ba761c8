"""In a browser: the developer sees the usage alert banner on the dashboard and turns the
courtesy alert emails off with the checkbox beneath it."""

import re

import pytest

from portal.models import Account
from tests.factories import PASSWORD, UsageRollupFactory


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_banner_shows_and_the_checkbox_turns_courtesy_alerts_off(
    live_server, page, owner, screenshot
):
    # 80 % of the included units used: the banner reads the usage itself.
    UsageRollupFactory(
        account=owner.owned_accounts.get(),
        units=owner.owned_accounts.get().tier.included_units * 8 // 10,
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))

    banner = page.get_by_test_id("usage-alert-banner")
    assert "You have used 80% of your included units" in banner.inner_text()
    checkbox = page.get_by_test_id("courtesy-alerts")
    assert checkbox.is_checked()
    checkbox.uncheck()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/dashboard/"))
    screenshot(page, "dashboard-usage-alerts")

    assert "Courtesy usage alerts are off" in page.content()
    assert not page.get_by_test_id("courtesy-alerts").is_checked()
    assert Account.objects.get(owner=owner).alerts_opt_out is True
