"""axe-core on every portal page (issue 16, must show): as a visitor and as a signed-in
developer, in the light and the dark colour scheme, at desktop and phone widths, with no
serious or critical violation. A screenshot of each is saved under $MDK_ARTIFACTS.

axe-core is the copy bundled in axe-playwright-python (nothing downloaded); the colour scheme
is emulated with Playwright's ``page.emulate_media(color_scheme=…)``, which sets what the
``prefers-color-scheme`` media query answers
(https://playwright.dev/python/docs/api/class-page#page-emulate-media).

**A new page?** Add a row to ``PAGES``: its name, its path, and who opens it.
"""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests.factories import AccountFactory, ApiKeyFactory, UsageRollupFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VISITOR = "visitor"
DEVELOPER = "developer"


@dataclass(frozen=True)
class PortalPage:
    name: str
    path: str
    who: str


PAGES = [
    PortalPage("home", "/", VISITOR),
    PortalPage("pricing", "/pricing/", VISITOR),
    PortalPage("quickstart", "/quickstart/", VISITOR),
    PortalPage("problem-type", "/problems/quota-exceeded/", VISITOR),
    PortalPage("status", "/status/", VISITOR),
    PortalPage("login", "/accounts/login/", VISITOR),
    PortalPage("signup", "/accounts/signup/", VISITOR),
    PortalPage("password-reset", "/accounts/password/reset/", VISITOR),
    PortalPage("not-found", "/no-such-page/", VISITOR),
    PortalPage("api-docs", "/api/docs/", VISITOR),
    PortalPage("dashboard", "/dashboard/", DEVELOPER),
    PortalPage("keys", "/keys/", DEVELOPER),
    PortalPage("key-create", "/keys/new/", DEVELOPER),
    PortalPage("usage", "/usage/", DEVELOPER),
    PortalPage("billing", "/billing/", DEVELOPER),
    PortalPage("pricing-signed-in", "/pricing/", DEVELOPER),
    PortalPage("quickstart-signed-in", "/quickstart/", DEVELOPER),
    PortalPage("account-settings", "/account/", DEVELOPER),
    PortalPage("account-email", "/accounts/email/", DEVELOPER),
    PortalPage("account-password", "/accounts/password/change/", DEVELOPER),
    PortalPage("account-mfa", "/accounts/2fa/", DEVELOPER),
    PortalPage("account-mfa-activate", "/accounts/2fa/totp/activate/", DEVELOPER),
]
SCHEMES = ["light", "dark"]
WIDTHS = {"desktop": 1280, "phone": 390}
# What a page may not have: axe's two highest impacts.
BLOCKING = {"serious", "critical"}

axe = Axe()


@pytest.fixture
def developer(db):
    """A developer with a key, a day of usage (for the charts) and a verified email."""
    account = AccountFactory(period_start=timezone.now() - timedelta(days=3))
    key = ApiKeyFactory(account=account, name="laptop")
    for day in range(3):
        UsageRollupFactory(
            account=account,
            api_key=key,
            endpoint="lookup",
            minute=timezone.now().replace(second=0, microsecond=0) - timedelta(days=day, hours=1),
            units=40 * (day + 1),
            requests=40 * (day + 1),
        )
    return account.owner


def sign_in(context, live_server, user) -> None:
    """The developer's session cookie in the browser, from Django's test client."""
    client = Client()
    client.force_login(user)
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )


def blocking_violations(page) -> list[str]:
    results = axe.run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + "; ".join(node["target"][0] for node in violation["nodes"][:5])
        for violation in results.response["violations"]
        if violation["impact"] in BLOCKING
    ]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_portal_page_has_no_serious_violation(
    _playwright_browser, live_server, developer, screenshot, scheme, width
):
    found: dict[str, list[str]] = {}
    for who in (VISITOR, DEVELOPER):
        context = _playwright_browser.new_context(viewport={"width": WIDTHS[width], "height": 900})
        if who == DEVELOPER:
            sign_in(context, live_server, developer)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.emulate_media(color_scheme=scheme)
        for portal_page in (p for p in PAGES if p.who == who):
            page.goto(live_server.url + portal_page.path)
            if portal_page.name == "api-docs":
                page.wait_for_selector(".swagger-ui .opblock")
            problems = blocking_violations(page)
            if problems:
                found[portal_page.name] = problems
            screenshot(page, f"a11y-{portal_page.name}-{width}-{scheme}")
        context.close()

    assert found == {}


def test_the_dark_scheme_changes_the_colours(page, live_server):
    """Dark mode is real: the page's background and text swap (prefers-color-scheme)."""
    page.goto(live_server.url + "/quickstart/")
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")

    assert light == "rgb(247, 247, 251)"
    assert dark == "rgb(15, 17, 23)"


def test_the_skip_link_is_first_and_moves_focus_to_the_content(page, live_server):
    page.goto(live_server.url + "/quickstart/")

    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    assert skip.inner_text() == "Skip to main content"
    assert skip.is_visible()
    # A visible ring, not the browser's default that some pages hide.
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")

    assert page.evaluate("document.activeElement.id") == "main"
    # The next Tab goes on from the content, not back through the header's links.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.outerHTML.slice(0, 120)") == (
        '<a class="button secondary" href="/api/docs/">API reference</a>'
    )


def test_the_phone_menu_opens_from_the_keyboard(page, live_server):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + "/")
    nav = page.get_by_role("navigation", name="Main")
    assert not nav.is_visible()

    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")  # the brand
    page.keyboard.press("Tab")  # the menu toggle
    assert page.evaluate("document.activeElement.id") == "nav-toggle"
    page.keyboard.press("Space")

    assert nav.is_visible()
