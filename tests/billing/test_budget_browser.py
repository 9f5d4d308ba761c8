"""In a real browser, on a desktop and a phone: the billing page shows this period's spend, the
projected invoice and the spend cap in money; the developer sets a budget (a refused amount
first, with the reason beside the field) and sees it against the usage charges."""

import re

import pytest

from billing.models import Budget
from tests.billing.money_fixtures import capped_tier, subscribe, use
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))


@pytest.mark.parametrize("device", VIEWPORTS)
def test_spend_projection_and_setting_a_budget(live_server, page, owner, screenshot, device):
    account = subscribe(owner.owned_accounts.get(), capped_tier())
    use(account, 1600)  # 600 units past the included 1,000: $3.00 of usage charges
    page.set_viewport_size(VIEWPORTS[device])
    log_in(page, live_server, owner)

    assert page.get_by_test_id("spent-so-far").inner_text() == "$32.00"
    screenshot(page, f"dashboard-money-{device}")

    page.goto(f"{live_server.url}/billing/")
    assert page.get_by_test_id("spent-so-far").inner_text() == "$32.00"
    assert page.get_by_test_id("usage-so-far").inner_text() == "$3.00"
    assert page.get_by_test_id("projected-invoice").inner_text() == "$48.00"
    assert "usage charges stop at $20.00" in page.get_by_test_id("spend-cap").inner_text()
    assert page.get_by_test_id("projection-lines").is_visible()
    screenshot(page, f"billing-money-{device}")

    # Above the cap: refused, the reason beside the field, nothing saved.
    page.get_by_test_id("budget-amount").fill("25")
    page.get_by_test_id("budget-save").click()
    page.wait_for_load_state()
    assert "spend cap of $20.00" in page.locator("#amount-errors").inner_text()
    assert page.get_by_test_id("budget-amount").get_attribute("aria-invalid") == "true"
    assert not Budget.objects.filter(account=account).exists()
    screenshot(page, f"budget-refused-{device}")

    page.get_by_test_id("budget-amount").fill("5")
    page.get_by_label("80 %").uncheck()
    page.get_by_test_id("budget-alert-amounts").fill("2.50")
    page.get_by_test_id("budget-save").click()
    page.wait_for_url(re.compile(r"/billing/#budget$"))

    assert "Budget set: $5.00" in page.content()
    standing = page.get_by_test_id("budget-standing").inner_text()
    assert "$3.00 of $5.00 in usage charges (60 %)" in standing
    assert "Next email at $5.00." in standing
    budget = Budget.objects.get(account=account)
    # 50 % of $5.00 and the custom $2.50 are one amount, emailed once.
    assert budget.alert_points_cents() == [250, 500]
    screenshot(page, f"budget-set-{device}")

    # Nothing on the page makes a phone scroll sideways.
    width = VIEWPORTS[device]["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
