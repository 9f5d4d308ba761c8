"""In a browser, desktop and phone: the header's Account link opens the settings page with every
section in view, the usage export downloads, and deleting their login with the password (their
personal organisation with it) signs the developer out, refuses their key and their login, all
under the enforced Content-Security-Policy."""

import csv
import io
import re

import pytest
import requests

from tests.factories import PASSWORD, ApiKeyFactory, UsageRollupFactory
from tests.portal.test_content_security_policy_browser import REPORT_VIOLATIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, email: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))


@pytest.mark.parametrize("width", [1280, 390])
def test_settings_export_then_delete(live_server, page, owner, account, screenshot, width):
    violations: list[str] = []
    page.expose_binding("cspViolation", lambda source, text: violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.set_viewport_size({"width": width, "height": 844})
    key = ApiKeyFactory(account=account, name="laptop")
    UsageRollupFactory(account=account, api_key=key, endpoint="lookup", units=12, requests=12)
    email = owner.email
    log_in(page, live_server, email)

    if width < 720:
        page.locator("label.nav-toggle-label").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    page.wait_for_url(re.compile(r"/account/$"))
    for title in ("Email", "Password", "Two-factor authentication", "Notifications", "Your data"):
        assert page.get_by_role("heading", name=title, exact=True).is_visible()
    assert email in page.get_by_test_id("settings-email").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"account-settings-{width}")

    with page.expect_download() as download:
        page.get_by_role("link", name="Usage (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [(row["key_prefix"], row["units"]) for row in rows] == [(key.prefix, "12")]

    form = page.get_by_test_id("delete-form")
    form.get_by_label("Your password").fill("not my password")
    form.get_by_role("button", name="Delete my login").click()
    assert "That is not your password." in page.get_by_test_id("delete-form").inner_text()
    page.get_by_test_id("delete-form").get_by_label("Your password").fill(PASSWORD)
    page.get_by_test_id("delete-form").get_by_role("button", name="Delete my login").click()
    page.wait_for_url(f"{live_server.url}/")

    assert f"Your login is deleted. A confirmation is on its way to {email}." in page.inner_text(
        "main"
    )
    screenshot(page, f"account-deleted-{width}")
    refused = requests.get(
        f"{live_server.url}/v1/me", headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=5
    )
    assert refused.status_code == 401
    page.goto(f"{live_server.url}/dashboard/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    assert "/dashboard/" not in page.url
    assert violations == []
