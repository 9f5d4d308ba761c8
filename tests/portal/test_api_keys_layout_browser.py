"""In a browser: every key action stays reachable, on a laptop and on a phone (issue 16).

After a roll, the "Rolling — replaced by …" badge pushed Roll and Revoke out of the card at
1366 px, and on a phone the table had to be scrolled sideways to reach any action. The badge now
wraps, and on a narrow screen each key is a card of its own.
"""

import re
from datetime import timedelta

import pytest

from portal.services import api_key_roll
from tests.factories import PASSWORD, ApiKeyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))


@pytest.fixture
def keys(owner):
    """A rolled key in its grace (the long badge), its replacement and a plain key."""
    rolled = ApiKeyFactory(account=owner.owned_accounts.get(), name="Production backend (eu-west)")
    api_key_roll(key=rolled, grace=timedelta(days=1))
    ApiKeyFactory(account=owner.owned_accounts.get(), name="CI runner")
    return rolled


def inside(inner: dict, outer: dict) -> bool:
    # A pixel of slack for sub-pixel rounding.
    return (
        inner["x"] >= outer["x"] - 1
        and inner["y"] >= outer["y"] - 1
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 1
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 1
    )


def assert_every_action_visible_in(page, container: dict, viewport_width: int) -> int:
    actions = page.locator("table.keys summary")
    count = actions.count()
    # Roll and Revoke on the two working keys, Revoke on the rolling one.
    assert count == 2 * 2 + 1
    for index in range(count):
        action = actions.nth(index)
        box = action.bounding_box()
        assert box is not None and action.is_visible(), action.inner_text()
        assert inside(box, container), (action.inner_text(), box, container)
        assert box["x"] + box["width"] <= viewport_width + 1, (action.inner_text(), box)
    return count


@pytest.mark.parametrize("width", [1366, 1280])
def test_actions_stay_inside_the_card_on_a_laptop(
    live_server, page, owner, keys, screenshot, width
):
    page.set_viewport_size({"width": width, "height": 768})
    log_in(page, live_server, owner)
    page.goto(f"{live_server.url}/keys/")

    card = page.locator(".keys-wrap").bounding_box()
    assert_every_action_visible_in(page, card, width)
    # Nothing scrolls sideways: not the page, not the card.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    wrap = page.locator(".keys-wrap")
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert "Rolling" in page.locator("tr", has_text="replaced by").first.inner_text()
    screenshot(page, f"api-keys-rolled-{width}")

    # The last row's confirmation opens below it, whole, and widens nothing.
    row = page.locator("tr", has_text="replaced by")
    row.get_by_text("Revoke", exact=True).click()
    confirm = row.get_by_role("button", name="Yes, revoke it")
    box = confirm.bounding_box()
    assert box is not None and confirm.is_visible()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth")


def test_every_action_is_reachable_on_a_phone_without_sideways_scrolling(
    live_server, page, owner, keys, screenshot
):
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, owner)
    page.goto(f"{live_server.url}/keys/")

    viewport = {"x": 0, "y": 0, "width": 390, "height": 10_000}
    assert_every_action_visible_in(page, viewport, 390)
    for row in page.locator("table.keys tbody tr").all():
        assert inside(row.bounding_box(), page.locator(".keys-wrap").bounding_box())
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator(".keys-wrap").evaluate("el => el.scrollWidth <= el.clientWidth")
    screenshot(page, "api-keys-rolled-phone")

    # The revoke confirmation opens in place and its button is on screen too.
    row = page.locator("tr", has_text="CI runner")
    row.get_by_text("Revoke", exact=True).click()
    confirm = row.get_by_role("button", name="Yes, revoke it")
    box = confirm.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    screenshot(page, "api-keys-revoke-phone")
