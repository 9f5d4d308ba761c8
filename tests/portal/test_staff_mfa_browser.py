"""An operator's first admin visit sets up an authenticator app; later visits ask for its code.
In a real browser, the code computed here the way a phone does (tests/portal/totp.py)."""

import re

import pytest

from tests.factories import PASSWORD, StaffUserFactory
from tests.portal.totp import fresh_totp_code

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.real_staff_login,
]


def sign_in(page, email: str) -> None:
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()


def test_operator_sets_up_an_authenticator_app_then_signs_in_with_its_code(
    live_server, page, screenshot
):
    operator = StaffUserFactory(is_superuser=True, email="ops@example.com")
    admin_url = f"{live_server.url}/admin/"

    page.goto(admin_url)
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/admin/"))
    sign_in(page, operator.email)
    # allauth confirms the password before a factor is added, then shows the activation page.
    page.wait_for_url(re.compile(r"/accounts/reauthenticate/"))
    assert "Set up an authenticator app to open the admin." in page.content()
    screenshot(page, "staff-mfa-confirm-password")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r"/accounts/2fa/totp/activate/"))

    qr = page.get_by_test_id("totp-qr")
    # Drawn by the server into a data: URI: it shows with no network, under the page's CSP.
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    screenshot(page, "staff-mfa-activate")
    secret = page.get_by_test_id("totp-secret").input_value()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    page.fill("input[name=code]", fresh_totp_code(secret))
    page.get_by_role("button", name="Activate").click()

    page.wait_for_url(re.compile(r"/accounts/2fa/recovery-codes/$"))
    codes = page.get_by_test_id("recovery-codes").locator("code").all_inner_texts()
    assert len(codes) == 10
    assert all(re.fullmatch(r"\d{8}", code) for code in codes)
    screenshot(page, "staff-mfa-recovery-codes")
    page.get_by_role("link", name="Continue to the admin").click()
    page.wait_for_url(admin_url)
    assert page.locator("#site-name").inner_text() == "Meterdesk operations"

    page.get_by_role("button", name="Log out").click()
    page.goto(admin_url)
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/admin/"))
    sign_in(page, operator.email)
    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
    page.fill("input[name=code]", "000000")
    page.get_by_role("button", name="Sign in").click()
    assert "Incorrect code." in page.content()
    screenshot(page, "staff-mfa-code-refused")
    page.fill("input[name=code]", fresh_totp_code(secret))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(admin_url)
    screenshot(page, "staff-mfa-admin")
    assert page.locator("#site-name").inner_text() == "Meterdesk operations"
