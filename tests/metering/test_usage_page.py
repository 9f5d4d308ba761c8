"""The usage page: the period as two SVG charts (cumulative units against the quota line, units
per day as bars), a progress bar, tables, and filters scoped to the developer's own keys."""

import re

import pytest
from django.utils import timezone

from tests.factories import ApiKeyFactory, UsageRollupFactory
from tests.metering.spending import spend

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(account):
    """Owner's account: 300 units rolled up on the period's first day, 50 live today."""
    laptop = ApiKeyFactory(account=account, name="laptop")
    server = ApiKeyFactory(account=account, name="server")
    UsageRollupFactory(account=account, api_key=laptop, minute=timezone.now(), units=300)
    spend(server, cost=5, endpoint="compute", times=10)
    return laptop, server


def test_page_needs_a_login(client, db):
    response = client.get("/usage/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_page_draws_the_period_as_charts_with_the_quota_line(owner_client, account, usage):
    response = owner_client.get("/usage/")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("<svg") == 2
    days = (account.current_period()[1] - account.current_period()[0]).days
    bars = re.findall(r'<rect class="bar" [^>]*height="([\d.]+)"', html)
    assert len(bars) in (days, days + 1)
    assert sum(float(height) > 0 for height in bars) == 1  # all usage so far is today's
    assert 'class="quota"' in html
    assert "Included 1,000" in html
    assert '<polyline class="cumulative-line"' in html
    assert 'role="progressbar"' in html
    assert 'aria-valuenow="35"' in html  # 350 of 1,000 units
    assert "350" in html and "650" in html  # used, and left


def test_page_lists_usage_per_endpoint_and_key(owner_client, usage):
    html = owner_client.get("/usage/").content.decode()

    assert re.search(r"<code>compute</code></a></td><td class=\"num\">50<", html)
    assert re.search(r">laptop</a>.*?<td class=\"num\">300<", html, re.S)


def test_filtering_by_key_shows_only_that_key(owner_client, usage):
    _laptop, server = usage

    response = owner_client.get("/usage/", {"key": server.pk})

    html = response.content.decode()
    assert response.status_code == 200
    assert "Showing key <strong>server</strong>" in html
    assert "50 units" in html
    assert f'<option value="{server.pk}" selected>' in html


def test_filtering_by_endpoint(owner_client, usage):
    response = owner_client.get("/usage/", {"endpoint": "compute"})

    assert response.status_code == 200
    assert "endpoint <strong>compute</strong>: 50 units" in response.content.decode()


def test_another_accounts_key_is_a_404(owner_client, outsider):
    foreign = ApiKeyFactory(account=outsider.account)

    response = owner_client.get("/usage/", {"key": foreign.pk})

    assert response.status_code == 404


@pytest.mark.parametrize("params", [{"key": "abc"}, {"key": "99999"}, {"endpoint": "<script>"}])
def test_malformed_filters_are_a_404(owner_client, params, account):
    assert owner_client.get("/usage/", params).status_code == 404


def test_another_accounts_usage_never_shows(outsider_client, usage):
    html = outsider_client.get("/usage/").content.decode()

    assert "server" not in html
    assert "No calls yet this period" in html


def test_overage_is_shown_in_red_past_the_quota(owner_client, account):
    UsageRollupFactory(account=account, minute=timezone.now(), units=1250)

    html = owner_client.get("/usage/").content.decode()

    assert 'class="progress over"' in html
    assert "250 units" in html
    assert "Calls are refused until the period ends." in html


@pytest.mark.browser
def test_page_reads_on_a_phone_without_sideways_scrolling(
    live_server, page, owner, usage, screenshot
):
    from tests.factories import PASSWORD

    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.wait_for_url(re.compile(r"/dashboard/"))
    page.goto(f"{live_server.url}/usage/")

    chart = page.locator("svg.usage-chart").first
    box = chart.bounding_box()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    screenshot(page, "usage-page-phone")

    assert box is not None and box["width"] <= 375
    assert overflow <= 0
    assert page.locator("svg.usage-chart rect.bar").count() >= 28
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "usage-page-desktop")
