"""In a browser: the footer's Status opens the checks in words, under the enforced
Content-Security-Policy without a violation (issue 16: it opened raw JSON)."""

import pytest

from tests.portal.test_content_security_policy_browser import REPORT_VIOLATIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_footer_status_link_opens_a_page_in_words(live_server, page, screenshot):
    violations: list[str] = []
    page.expose_binding("cspViolation", lambda source, text: violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)

    page.goto(f"{live_server.url}/pricing/")
    page.locator("footer").get_by_role("link", name="Status").click()
    page.wait_for_url(f"{live_server.url}/status/")

    assert page.get_by_test_id("status-summary").inner_text() == "Everything is working."
    assert "Database" in page.get_by_test_id("status-checks").inner_text()
    assert page.get_by_role("heading", name="Status").is_visible()
    assert violations == []
    screenshot(page, "status-page")
