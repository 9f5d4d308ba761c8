"""/admin/ in a real browser: an operator signs in with their authenticator app's code and
finds the overview above the apps, its figures readable and its links leading to the filtered
lists, dj-stripe's records folded away; at desktop and phone widths, in the light and the dark
scheme, with no serious or critical axe-core violation in the overview. Screenshots are saved
under $MDK_ARTIFACTS."""

import re
from datetime import timedelta

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from billing.models import MeterReport
from tests.factories import (
    PASSWORD,
    AccountFactory,
    MeterReportFactory,
    PaidTierFactory,
    StaffUserFactory,
    UsageRollupFactory,
)
from tests.portal.totp import fresh_totp_code

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.real_staff_login,
]

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
BLOCKING = {"serious", "critical"}


@pytest.fixture
def business(db):
    """Two paying tiers, a month of usage, one account near its quota, one past due, one
    with a failed usage report."""
    pro = PaidTierFactory(slug="pro", name="Pro", base_price_cents=2900, included_units=1000)
    team = PaidTierFactory(slug="team", name="Team", base_price_cents=9900)
    now = timezone.now().replace(second=0, microsecond=0)
    near = AccountFactory(
        tier=pro, subscribed_tier=pro, payment_status="active", owner__email="near@example.com"
    )
    UsageRollupFactory(account=near, units=930, minute=now - timedelta(hours=2))
    AccountFactory(tier=team, subscribed_tier=team, payment_status="past_due")
    AccountFactory(tier=pro, subscribed_tier=pro, payment_status="active")
    failing = AccountFactory()
    MeterReportFactory(account=failing, status=MeterReport.Status.FAILED)
    for day in range(30):
        UsageRollupFactory(minute=now - timedelta(days=day), units=100 + 37 * (day % 9))
    return near


@pytest.fixture
def operator(db):
    """A superuser whose authenticator app is set up, and the secret their phone holds."""
    user = StaffUserFactory(is_superuser=True, email="ops@example.com")
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return user, secret


def sign_in(page, live_server, operator) -> None:
    """Through the real pages: allauth's login, then the code from the authenticator app."""
    user, secret = operator
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
    page.fill("input[name=code]", fresh_totp_code(secret))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/admin/")


def settled(page) -> None:
    """Wait until no CSS transition runs. (``wait_for_function`` evaluates a string in the page,
    which the admin's Content-Security-Policy refuses; ``evaluate`` goes through the
    DevTools protocol.)"""
    for _ in range(100):
        if page.evaluate("document.getAnimations().every(a => a.playState !== 'running')"):
            return
        page.wait_for_timeout(20)
    raise AssertionError("CSS transitions still running after 2 s")


def overview_violations(page) -> list[str]:
    results = Axe().run(page, context=".overview")
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + "; ".join(
            f"{node['target'][0]}: {node.get('failureSummary', '')}"
            for node in violation["nodes"][:3]
        )
        for violation in results.response["violations"]
        if violation["impact"] in BLOCKING
    ]


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_operator_reads_the_overview_and_follows_its_links(
    _playwright_browser, live_server, business, operator, screenshot, width
):
    wide, high = WIDTHS[width]
    context = _playwright_browser.new_context(viewport={"width": wide, "height": high})
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, live_server, operator)

    revenue = page.locator("#overview-revenue")
    assert revenue.locator(".overview-figure").inner_text() == "$157.00"  # two Pro, one Team
    assert "3 active subscriptions" in revenue.inner_text()
    chart = page.locator("svg.overview-chart")
    assert chart.locator("rect.bar").count() == 30
    box = chart.bounding_box()
    assert box is not None and box["width"] <= wide  # the chart fits the screen
    # Nothing on the page is wider than the screen but the admin's own tables' scrollers.
    assert page.evaluate("document.documentElement.scrollWidth") <= wide + 1
    stripe = page.locator("details.stripe-records")
    assert not stripe.evaluate("details => details.open")
    assert page.locator("#overview-near-quota").get_by_text("near@example.com").is_visible()
    screenshot(page, f"admin-overview-{width}")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        # The admin's links fade to the new scheme's colours (a CSS transition): axe reads the
        # colours once they have arrived (transitions are listed by document.getAnimations()).
        settled(page)
        assert overview_violations(page) == [], scheme
    screenshot(page, f"admin-overview-{width}-dark")
    page.emulate_media(color_scheme="light")

    stripe.locator("summary").click()
    assert stripe.get_by_role("link", name="Subscriptions").first.is_visible()
    screenshot(page, f"admin-overview-{width}-stripe-records")

    page.locator("#overview-attention").get_by_role("link", name=re.compile("Near quota")).click()
    page.wait_for_url(re.compile(r"/admin/portal/account/\?attention=near_quota"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "near@example.com" in rows.first.inner_text()
    screenshot(page, f"admin-overview-{width}-near-quota-list")

    page.go_back()
    page.locator("#overview-attention").get_by_role("link", name=re.compile("Past due")).click()
    page.wait_for_url(re.compile(r"payment_status__exact=past_due"))
    assert page.locator("#result_list tbody tr").count() == 1
    context.close()
