"""In a browser, desktop and phone: the nav's Docs opens the quickstart with the developer's key
prefix in every sample, a Copy button copies a sample whole under the enforced
Content-Security-Policy, nothing scrolls sideways; Swagger UI's Authorize field starts with the
same prefix, a pasted key replaces it, and Try it out answers 200 with it."""

import re

import pytest

from tests.factories import ApiKeyFactory
from tests.portal.test_accessibility_browser import sign_in
from tests.portal.test_content_security_policy_browser import REPORT_VIOLATIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": 1280, "phone": 390}


@pytest.fixture
def key(account):
    return ApiKeyFactory(account=account, name="laptop")


@pytest.fixture
def browser_page(_playwright_browser, live_server, owner, request):
    """A signed-in page at the test's width, allowed to use the clipboard, reporting CSP
    violations into ``page.violations``."""
    width = WIDTHS[request.param]
    context = _playwright_browser.new_context(viewport={"width": width, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(context, live_server, owner)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.violations = []
    page.expose_binding("cspViolation", lambda source, text: page.violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.width_name = request.param
    yield page
    context.close()


@pytest.mark.parametrize("browser_page", list(WIDTHS), indirect=True)
def test_the_quickstart_samples_carry_the_prefix_and_copy_whole(
    browser_page, live_server, key, screenshot
):
    page = browser_page
    page.goto(f"{live_server.url}/dashboard/")
    if page.width_name == "phone":
        page.locator("label.nav-toggle-label").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Docs").click()
    page.wait_for_url(re.compile(r"/quickstart/$"))

    for name in ("env", "curl", "python", "javascript"):
        assert (
            f"{key.prefix}_REST_OF_YOUR_KEY" in page.get_by_test_id(f"sample-{name}").inner_text()
        )
    button = page.get_by_role("button", name="Copy the Python example")
    button.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("import json") and copied.endswith('print(call("/lookup?q=42"))')
    assert button.inner_text() == "Copied"
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS[page.width_name]
    assert page.violations == []
    screenshot(page, f"quickstart-{page.width_name}")


@pytest.mark.parametrize("browser_page", list(WIDTHS), indirect=True)
def test_swagger_authorize_starts_with_the_prefix_and_try_it_out_works(
    browser_page, live_server, key, screenshot
):
    page = browser_page
    page.goto(f"{live_server.url}/api/docs/")
    page.locator(".swagger-ui .btn.authorize").click()
    field = page.locator(".auth-container input").first
    field.wait_for()

    assert field.input_value() == f"{key.prefix}_"
    assert field.get_attribute("placeholder") == f"{key.prefix}_REST_OF_YOUR_KEY"
    screenshot(page, f"swagger-authorize-{page.width_name}")
    # Pasting the whole key replaces the prefix rather than doubling it.
    page.evaluate("(text) => navigator.clipboard.writeText(text)", key.plaintext)
    field.focus()
    page.keyboard.press("End")
    page.keyboard.press("Control+V")
    assert field.input_value() == key.plaintext
    page.locator(".auth-container").first.locator("button.modal-btn.authorize").click()
    page.locator(".dialog-ux button.close-modal").click()

    operation = page.locator("#operations-v1-v1_me_retrieve")
    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert key.prefix in operation.locator(".live-responses-table .microlight").first.inner_text()
    assert page.violations == []
