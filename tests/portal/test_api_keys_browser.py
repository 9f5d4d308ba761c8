"""In a real browser: create a key, copy it, see it once; the docs load nothing from elsewhere."""

import re
from urllib.parse import urlparse

import pytest

from tests.factories import PASSWORD, ApiKeyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))


def test_developer_creates_copies_and_then_no_longer_sees_a_key(
    live_server, page, owner, screenshot
):
    log_in(page, live_server, owner)
    page.get_by_role("link", name="API keys").first.click()
    page.get_by_role("link", name="Create your first key").click()
    page.fill("input[name=name]", "My laptop")
    page.get_by_role("button", name="Create key").click()

    # The answer to the form's POST shows the secret: nothing stored could show it again.
    secret = page.get_by_test_id("new-key").inner_text()
    assert re.fullmatch(r"mdk_test_[a-z0-9]{8}_[A-Za-z0-9]{32}", secret)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    copy = page.get_by_role("button", name="Copy")
    copy.click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot(page, "api-key-created")

    # Reloading re-sends the form: it makes no second key and lands on the list, without the
    # secret.
    page.reload()
    page.wait_for_url(re.compile(r"/keys/$"))
    assert secret not in page.content()
    assert "That form was already sent" in page.content()
    assert page.get_by_role("cell", name="My laptop").count() == 1

    page.get_by_text("Revoke", exact=True).click()
    page.get_by_role("button", name="Yes, revoke it").click()
    page.wait_for_url(re.compile(r"/keys/$"))
    assert "stops working within" in page.content()


def test_docs_page_loads_only_from_this_server(live_server, page, screenshot):
    hosts = set()
    page.on("request", lambda request: hosts.add(urlparse(request.url).netloc))

    page.goto(f"{live_server.url}/api/docs/")
    page.get_by_text("/v1/compute").first.wait_for()
    screenshot(page, "api-docs")

    assert hosts == {urlparse(live_server.url).netloc}


def test_keys_page_fits_a_phone(live_server, page, owner, screenshot):
    ApiKeyFactory(account=owner.owned_accounts.get(), name="CI runner")
    page.set_viewport_size({"width": 390, "height": 800})
    log_in(page, live_server, owner)

    page.goto(f"{live_server.url}/keys/")
    screenshot(page, "api-keys-phone")

    # The table scrolls inside its card; the page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
