"""In a real browser, under the enforced Content-Security-Policy: every page type loads without
a single violation, and what runs on them still runs (the copy button, Swagger UI and its "Try it
out", the admin's scripts, the usage bar, the upgrade button's redirect to Stripe Checkout).

Violations are caught two ways: the `securitypolicyviolation` event the page fires for each one
(https://developer.mozilla.org/en-US/docs/Web/API/Element/securitypolicyviolation_event),
reported to the test through an exposed binding that outlives navigations, and the console
error Chromium logs beside it ("Refused to ... because it violates the following Content
Security Policy directive")."""

import base64
import re

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from tests.billing import conftest as billing_fixtures
from tests.factories import PASSWORD, AccountFactory, UsageRollupFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The billing tests' emulator fixtures: tiers pushed to Stripe.
stripe_api = billing_fixtures.stripe_api
catalog = billing_fixtures.catalog

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const { effectiveDirective, blockedURI, documentURI } = event;
  window.cspViolation(`${effectiveDirective} refused ${blockedURI} on ${documentURI}`);
});
"""


@pytest.fixture
def violations(page):
    """Every CSP violation any page of the test reports, in the order they happen."""
    seen: list[str] = []
    page.expose_binding("cspViolation", lambda source, text: seen.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            seen.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return seen


# The share of a screenshot's middle row painted in the portal's brand colour (#4f46e5, blue
# well above red), measured by drawing the PNG on a canvas in the page.
BRAND_PAINTED_SHARE = """
async (png) => {
  const image = new Image();
  image.src = `data:image/png;base64,${png}`;
  await image.decode();
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [image.width, image.height];
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const row = context.getImageData(0, Math.floor(image.height / 2), image.width, 1).data;
  let painted = 0;
  for (let i = 0; i < row.length; i += 4) painted += row[i + 2] - row[i] > 80 ? 1 : 0;
  return painted / image.width;
}
"""


def brand_painted_share(page, locator) -> float:
    png = base64.b64encode(locator.screenshot()).decode()
    return page.evaluate(BRAND_PAINTED_SHARE, png)


def log_in_through_the_form(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))


def log_in_as_operator(page, live_server, user) -> None:
    """A signed-in admin session, handed to the browser as its cookie."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def test_the_developer_pages_run_without_a_violation(live_server, page, violations, owner):
    quarter = owner.owned_accounts.get().tier.included_units // 4
    UsageRollupFactory(account=owner.owned_accounts.get(), minute=timezone.now(), units=quarter)

    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Sign up").first.click()
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password1]", "analytical-Engine-1843")
    page.fill("input[name=password2]", "analytical-Engine-1843")
    page.get_by_role("button", name=re.compile("Sign Up", re.I)).click()
    page.wait_for_url(re.compile(r"/accounts/confirm-email/"))
    page.goto(f"{live_server.url}/pricing/")

    log_in_through_the_form(page, live_server, owner)
    page.get_by_role("link", name="API keys").first.click()
    page.get_by_role("link", name="Create your first key").click()
    page.fill("input[name=name]", "My laptop")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("new-key").inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret

    page.get_by_role("link", name="Usage").first.click()
    page.wait_for_url(re.compile(r"/usage/$"))
    # The quota bar (a <progress>, not a span sized by a style attribute) is a quarter full:
    # a quarter of its width, and no more, is painted in the brand colour.
    bar = page.locator(".usage-stats .progress")
    assert bar.locator("progress").evaluate("bar => bar.position") == pytest.approx(0.25)
    assert brand_painted_share(page, bar) == pytest.approx(0.25, abs=0.03)
    # The three charts (cumulative units, units per bucket, calls by outcome) draw under the CSP.
    assert page.locator("svg.usage-chart").count() == 3

    # Setting up an authenticator shows its QR code as a data: image (allauth.mfa).
    page.goto(f"{live_server.url}/accounts/2fa/totp/activate/")
    if "/reauthenticate/" in page.url:
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name=re.compile("Confirm", re.I)).click()
        page.wait_for_url(re.compile(r"/2fa/totp/activate/"))
    qr_code = page.locator("img[src^='data:image/svg+xml']")
    qr_code.wait_for()
    assert qr_code.evaluate("image => image.complete && image.naturalWidth > 0")

    page.get_by_role("link", name="Billing").first.click()
    page.wait_for_url(re.compile(r"/billing/$"))
    page.goto(f"{live_server.url}/pricing/")
    page.goto(f"{live_server.url}/dashboard/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(rf"{re.escape(live_server.url)}/(accounts/logout/)?$"))

    assert violations == []


def test_swagger_ui_renders_and_calls_the_api_without_a_violation(live_server, page, violations):
    page.goto(f"{live_server.url}/api/docs/")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() >= 4
    assert page.get_by_text("/v1/compute").first.is_visible()

    # "Try it out" sends a real call to the API from the page (connect-src 'self').
    me = page.locator(".opblock", has_text="/v1/me").first
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()
    status = me.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert "401" in status.inner_text()

    assert violations == []


def test_the_admin_runs_without_a_violation(live_server, page, violations, admin_user):
    account = AccountFactory()
    log_in_as_operator(page, live_server, admin_user)

    page.goto(f"{live_server.url}/admin/portal/account/")
    # The action bar's script: ticking a row counts it.
    page.locator(f"input.action-select[value='{account.pk}']").check()
    page.locator(".action-counter").get_by_text("1 of").wait_for()
    page.select_option("select[name=action]", "suspend")
    page.get_by_role("button", name="Go").click()
    page.get_by_role("heading", name=re.compile("1 account")).wait_for()
    # The intermediate step's "No, take me back" is a script (admin/js/cancel.js).
    page.get_by_role("link", name="No, take me back").click()
    page.wait_for_url(re.compile(r"/admin/portal/account/$"))

    page.goto(f"{live_server.url}/admin/portal/account/{account.pk}/change/")
    page.get_by_role("link", name="Money audit").click()
    page.wait_for_url(re.compile(r"/money-audit/"))
    # The audit's colours come from its stylesheet: an agreeing or differing row is tinted.
    background = page.evaluate(
        "getComputedStyle(document.querySelector('.money-audit tbody tr')).backgroundColor"
    )
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    page.goto(f"{live_server.url}/admin/")

    assert violations == []


def test_the_upgrade_button_reaches_stripe_checkout_without_a_violation(
    live_server, page, violations, stripe_api, catalog, owner, settings
):
    """Chromium checks the pricing form's 303 to Checkout against the pricing page's
    form-action (MDN, "CSP: form-action": Chrome blocks such redirects), so the emulator's
    origin must be in it: without it the click ends on an error page."""
    settings.SITE_URL = live_server.url
    log_in_through_the_form(page, live_server, owner)

    page.goto(f"{live_server.url}/pricing/")
    page.get_by_test_id("upgrade-pro").click()

    page.wait_for_url(re.compile(re.escape(stripe_api.url) + r"/c/pay/cs_test_"))
    assert violations == []
