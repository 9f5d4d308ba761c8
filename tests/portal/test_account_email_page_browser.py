"""In a browser: the Account link opens the settings page, whose email section leads to the
email addresses page, laid out as the portal."""

import re

import pytest

from tests.factories import PASSWORD
from tests.portal.test_content_security_policy_browser import REPORT_VIOLATIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1280, 390])
def test_account_link_opens_a_styled_email_page(live_server, page, owner, screenshot, width):
    violations: list[str] = []
    page.expose_binding("cspViolation", lambda source, text: violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.set_viewport_size({"width": width, "height": 844})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))

    if width < 720:
        page.locator("label.nav-toggle-label").click()
    page.get_by_role("link", name="Account", exact=True).click()
    page.wait_for_url(re.compile(r"/account/$"))
    page.get_by_role("link", name="Manage email addresses").click()
    page.wait_for_url(re.compile(r"/accounts/email/$"))

    choice = page.locator("label.email-choice").first
    radio = choice.locator("input[type=radio]")
    # The radio sits beside the address, not stretched over a line of its own.
    assert radio.bounding_box()["width"] < 40
    address = choice.locator(".email-address")
    assert abs(radio.bounding_box()["y"] - address.bounding_box()["y"]) < 20
    remove = page.get_by_role("button", name="Remove")
    assert "danger" in remove.get_attribute("class")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"account-email-{width}")

    # allauth's script, served from here, still asks before removing an address.
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", answer)
    remove.click()
    assert asked == ["Remove the selected email address from your account?"]
    assert violations == []
