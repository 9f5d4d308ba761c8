"""Signup → confirmation link from the email → login → dashboard, in a real browser."""

import re

import pytest
from django.core import mail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_developer_signs_up_confirms_logs_in_and_sees_the_dashboard(live_server, page, screenshot):
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Sign up").first.click()
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password1]", "analytical-Engine-1843")
    page.fill("input[name=password2]", "analytical-Engine-1843")
    page.get_by_role("button", name=re.compile("Sign Up", re.I)).click()
    page.wait_for_url(re.compile(r"/accounts/confirm-email/"))
    assert "verify your email" in page.content().lower()

    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    found = re.search(r"https?://\S+/accounts/confirm-email/\S+/", str(message.body))
    assert found is not None
    link = found.group(0)
    page.goto(re.sub(r"^https?://[^/]+", live_server.url, link))
    page.get_by_role("button", name=re.compile("Confirm", re.I)).click()

    # Confirming logs the developer in and lands on the dashboard.
    page.wait_for_url(re.compile(r"/dashboard/"))
    assert page.get_by_test_id("tier-name").inner_text() == "Free"

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(rf"{re.escape(live_server.url)}/(accounts/logout/)?$"))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "ada@example.com")
    page.fill("input[name=password]", "analytical-Engine-1843")
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))
    screenshot(page, "dashboard-after-signup")
    assert "ada@example.com" in page.content()
