"""The usage page: a billing period (the running one or a past one) or any dates, per minute,
hour or day, as SVG charts each with a table of the same figures; billed units beside refused
and failed calls; filters scoped to the developer's own keys; past periods listed."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import AccountPeriod, Role
from tests.factories import ApiKeyFactory, MembershipFactory, UsageRollupFactory
from tests.metering.spending import spend

pytestmark = pytest.mark.django_db


def found(pattern: str, html: str) -> str:
    """The first group of ``pattern`` in the page; fails the test when the page lacks it."""
    match = re.search(pattern, html, re.S)
    assert match is not None, pattern
    return match.group(1)


@pytest.fixture
def usage(account):
    """Owner's account: 300 units rolled up now, 50 live, and refused and failed calls."""
    laptop = ApiKeyFactory(account=account, name="laptop")
    server = ApiKeyFactory(account=account, name="server")
    UsageRollupFactory(account=account, api_key=laptop, minute=timezone.now(), units=300)
    UsageRollupFactory(
        account=account,
        api_key=server,
        endpoint="compute",
        minute=timezone.now() - timedelta(minutes=5),
        units=0,
        requests=0,
        refused_rate=4,
        refused_quota=2,
        errors=3,
    )
    spend(server, cost=5, endpoint="compute", times=10)
    return laptop, server


def test_page_needs_a_login(client, db):
    response = client.get("/usage/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_page_draws_the_period_against_the_quota_line(owner_client, account, usage):
    response = owner_client.get("/usage/")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("<svg") == 3  # cumulative, units per day, calls per day
    assert html.count("<title id=") == 3 and html.count("<desc id=") == 3
    start, end = account.current_period()
    days = (end.date() - start.date()).days + 1
    bars = re.findall(r"<g><title>[^<]*Billed units \d", html)
    assert len(bars) == 1  # all the units so far are today's
    assert len(re.findall(r"<tr><th scope=\"row\">", html)) == days  # the data table
    assert "Included 1,000" in html
    assert '<polyline class="cumulative-line"' in html
    assert 'aria-valuenow="35"' in html  # 350 of 1,000 units
    assert "350" in html and "650" in html  # used, and left


def test_refused_and_failed_calls_are_shown_beside_the_billed_ones(owner_client, usage):
    html = owner_client.get("/usage/").content.decode()

    calls = found(r'data-testid="usage-refused">(.*?)</p>', html)
    assert "4 refused over the rate limit, 2 over the quota" in calls
    assert "3 failed" in calls
    assert 'class="bar-refused-rate"' in html and 'class="bar-error"' in html
    assert re.search(
        r"<code>compute</code></a></td><td class=\"num\">50</td><td class=\"num\">10</td>"
        r"<td class=\"num\">6</td><td class=\"num\">3</td>",
        html,
    )


def test_page_lists_usage_per_endpoint_and_key(owner_client, usage):
    html = owner_client.get("/usage/").content.decode()

    assert re.search(r"<code>compute</code></a></td><td class=\"num\">50<", html)
    assert re.search(r">laptop</a>.*?<td class=\"num\">300<", html, re.S)


def test_hours_of_a_period(owner_client, account, usage):
    html = owner_client.get("/usage/", {"granularity": "hour"}).content.decode()

    start, end = account.current_period()
    hours = int((end - start).total_seconds() // 3600)
    rows = re.findall(r"<tr><th scope=\"row\">", html)
    assert len(rows) in (hours, hours + 1)  # a start inside an hour adds a partial one
    assert "Billed units per hour" in html


def test_any_dates_instead_of_a_period(owner_client, usage):
    today = timezone.now().date()

    html = owner_client.get(
        "/usage/", {"from": today.isoformat(), "to": today.isoformat()}
    ).content.decode()

    assert "Billed units per hour" in html  # a day or two: hours by default
    assert len(re.findall(r"<tr><th scope=\"row\">", html)) == 24
    assert "Units so far against the included quota" not in html
    assert re.search(r'Billed units</div>\s*<div class="stat-value">350<', html)


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


def test_drill_down_links_keep_the_period_and_granularity(owner_client, usage):
    html = owner_client.get("/usage/", {"granularity": "hour"}).content.decode()

    assert 'href="?granularity=hour&amp;endpoint=compute"' in html


def test_the_csv_link_carries_the_filters(owner_client, usage):
    _laptop, server = usage

    html = owner_client.get("/usage/", {"key": server.pk, "granularity": "hour"}).content.decode()

    assert f'href="/usage/export.csv?granularity=hour&amp;key={server.pk}"' in html


def test_another_accounts_key_is_a_404(owner_client, outsider):
    foreign = ApiKeyFactory(account=outsider.owned_accounts.get())

    response = owner_client.get("/usage/", {"key": foreign.pk})

    assert response.status_code == 404


def test_an_endpoint_the_account_did_not_call_is_a_404(owner_client, usage, outsider):
    UsageRollupFactory(
        account=outsider.owned_accounts.get(), endpoint="secret", minute=timezone.now()
    )

    assert owner_client.get("/usage/", {"endpoint": "secret"}).status_code == 404


def test_an_endpoint_called_in_another_period_shows_zeros_here(owner_client, account):
    """A bookmarked filter survives a new period."""
    UsageRollupFactory(
        account=account, endpoint="compute", minute=account.period_start - timedelta(days=40)
    )

    response = owner_client.get("/usage/", {"endpoint": "compute"})

    assert response.status_code == 200
    assert "endpoint <strong>compute</strong>: 0 units" in response.content.decode()


@pytest.mark.parametrize("params", [{"key": "abc"}, {"key": "99999"}, {"endpoint": "<script>"}])
def test_malformed_filters_are_a_404(owner_client, params, account):
    assert owner_client.get("/usage/", params).status_code == 404


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"granularity": "week"}, "granularity: Use minute, hour or day."),
        ({"from": "someday"}, "from: Not an ISO 8601 date"),
        ({"period": "previous"}, "period: There is no previous period yet."),
    ],
)
def test_a_bad_parameter_says_what_was_wrong_and_shows_this_period(
    owner_client, account, params, said
):
    response = owner_client.get("/usage/", params, follow=True)

    assert response.redirect_chain == [("/usage/", 302)]
    assert said in response.content.decode()


def test_another_accounts_usage_never_shows(outsider_client, usage):
    html = outsider_client.get("/usage/").content.decode()

    assert "server" not in html
    assert "No calls in this stretch" in html


def test_past_periods_are_listed_and_shown(owner_client, account, usage):
    # A past period as Stripe records it, with its end: 31 days before this one began (a whole
    # month or not: when a 30-day month follows the 31st, an open-ended one would roll a month
    # to the 30th and list a one-day stub before this period).
    past_start = account.period_start - timedelta(days=31)
    AccountPeriod.objects.create(
        account=account, start=past_start, end=account.period_start, tier=account.tier
    )
    UsageRollupFactory(account=account, minute=past_start + timedelta(days=1), units=77)

    current = owner_client.get("/usage/").content.decode()
    past = owner_client.get("/usage/", {"period": past_start.date().isoformat()})

    periods = found(r'data-testid="usage-periods">(.*?)</section>', current)
    assert periods.count("<tr") == 3  # the header, this period, the past one
    assert f"?period={past_start.date().isoformat()}" in periods
    html = past.content.decode()
    assert "Past billing period" in html
    assert re.search(r"<code>lookup</code></a></td><td class=\"num\">77<", html)
    assert "laptop" not in html.split('data-testid="usage-periods"')[0].split("By API key")[1]


def test_overage_is_shown_in_red_past_the_quota(owner_client, account):
    UsageRollupFactory(account=account, minute=timezone.now(), units=1250)

    html = owner_client.get("/usage/").content.decode()

    assert 'class="progress over"' in html
    assert "250 units" in html
    assert "Calls are refused until the period ends." in html


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.BILLING])
def test_every_member_sees_all_of_the_organisations_usage(client, account, usage, role):
    laptop, server = usage
    client.force_login(MembershipFactory(account=account, role=role).user)

    page = client.get("/usage/").content.decode()

    assert laptop.name in page and server.name in page
    assert "compute" in page
