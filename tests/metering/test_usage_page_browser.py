"""The usage page in a browser, at desktop and phone widths: drill down from the period to one
endpoint and one key, switch to hours, open a past period, and download the CSV of what is
shown — every view readable without sideways scrolling and with no serious or critical axe-core
violation. Screenshots of each are saved under $MDK_ARTIFACTS/screenshots/.

Downloads: Playwright's ``page.expect_download`` (https://playwright.dev/python/docs/downloads).
"""

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.test import Client
from django.utils import timezone

from portal.models import AccountPeriod
from tests.factories import AccountFactory, ApiKeyFactory, UsageRollupFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": (1280, 900), "phone": (375, 800)}
axe = Axe()


@pytest.fixture
def developer(db):
    """Three days into a period, with two keys, two endpoints, refusals, and a past period."""
    now = timezone.now().replace(second=0, microsecond=0)
    account = AccountFactory(period_start=now - timedelta(days=3))
    AccountPeriod.objects.create(account=account, start=account.period_start - timedelta(days=30))
    laptop = ApiKeyFactory(account=account, name="laptop")
    server = ApiKeyFactory(account=account, name="server")
    for day in range(3):
        minute = now - timedelta(days=day, hours=1)
        UsageRollupFactory(account=account, api_key=laptop, minute=minute, units=40 * (day + 1))
        UsageRollupFactory(
            account=account,
            api_key=server,
            endpoint="compute",
            minute=minute,
            units=25,
            requests=5,
            refused_rate=3 * day,
            errors=day,
        )
    UsageRollupFactory(account=account, api_key=laptop, minute=now - timedelta(days=20), units=9)
    return account


def signed_in(browser, live_server, account, width):
    client = Client()
    client.force_login(account.owner)
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, accept_downloads=True)
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    return context, page


def check_readable(page, screenshot, name):
    screenshot(page, name)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: {overflow}px sideways"
    blocking = [
        f"{v['id']}: {v['help']}"
        for v in axe.run(page).response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert blocking == [], name


@pytest.mark.parametrize("width", list(WIDTHS))
def test_drill_down_hours_past_period_and_csv(
    _playwright_browser, live_server, developer, screenshot, width
):
    context, page = signed_in(_playwright_browser, live_server, developer, width)
    try:
        page.goto(f"{live_server.url}/usage/")
        assert page.locator("svg.usage-chart").count() == 3
        assert page.get_by_text("9 refused over the rate limit").is_visible()
        check_readable(page, screenshot, f"usage-{width}-period")

        # Drill down: the endpoint from its table, then the key from the filter form.
        page.get_by_role("link", name="compute").click()
        page.wait_for_url("**endpoint=compute**")
        assert page.get_by_text("endpoint compute: 75 units").is_visible()
        page.select_option(
            "#usage-key", label=f"server ({developer.api_keys.get(name='server').prefix})"
        )
        page.select_option("#usage-granularity", "hour")
        page.get_by_role("button", name="Show", exact=True).click()
        page.wait_for_url("**granularity=hour**")
        assert page.get_by_role("heading", name="Billed units per hour").is_visible()
        check_readable(page, screenshot, f"usage-{width}-compute-server-hourly")

        # The CSV of what is shown, filters applied.
        with page.expect_download() as download_info:
            page.get_by_test_id("usage-csv").click()
        download = download_info.value
        server = developer.api_keys.get(name="server")
        assert re.fullmatch(
            rf"meterdesk-usage-\d{{8}}T\d{{4}}-\d{{8}}T\d{{4}}-hour-{server.prefix}-compute\.csv",
            download.suggested_filename,
        )
        rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
        assert sum(int(row["units"]) for row in rows) == 75
        assert {row["endpoint"] for row in rows} == {"compute"}

        # A past period, from the list.
        page.goto(f"{live_server.url}/usage/")
        page.get_by_test_id("usage-periods").get_by_role("link").first.click()
        page.wait_for_url("**period=**")
        assert page.get_by_text("Past billing period").is_visible()
        check_readable(page, screenshot, f"usage-{width}-past-period")
    finally:
        context.close()
