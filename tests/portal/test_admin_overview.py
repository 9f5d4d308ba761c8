"""/admin/ — the operators' overview: MRR and subscriptions by tier, signups and paying
conversions per week, the usage trend, and the accounts that need attention, each a link to the
admin list it counts; Meterdesk's apps first and dj-stripe's records collapsed last."""

import re
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from djstripe.models import Subscription

from billing.models import MeterReport
from billing.overview import week_start
from portal.admin_overview import operator_overview
from portal.models import Account
from tests.factories import (
    AccountFactory,
    MeterReportFactory,
    PaidTierFactory,
    QuotaCreditFactory,
    StaffUserFactory,
    StripeCustomerFactory,
    UsageRollupFactory,
)

pytestmark = pytest.mark.django_db

ADMIN = "/admin/"


def page_of(client) -> str:
    response = client.get(ADMIN)
    assert response.status_code == 200
    return response.content.decode()


def listed(client, url: str) -> set[Account]:
    """The accounts the admin list behind ``url`` shows (its whole result, one page)."""
    response = client.get(url)
    assert response.status_code == 200, url
    return set(response.context["cl"].queryset)


def subscribed(tier, status: str, **kwargs) -> Account:
    return AccountFactory(tier=tier, subscribed_tier=tier, payment_status=status, **kwargs)


def paid_subscription(
    account: Account, created: datetime, status: str = "active", *, metadata: bool = True
) -> None:
    """dj-stripe's copy of a subscription the account made on Stripe at ``created``, for a
    customer of its own (its id in the metadata, as ``account_stripe_customer_ensure`` makes
    them, unless ``metadata`` is False); the account links to the newest."""
    customer = StripeCustomerFactory(
        subscriber=account.owner, metadata={"account_id": str(account.pk)} if metadata else {}
    )
    Account.objects.filter(pk=account.pk).update(stripe_customer=customer)
    Subscription.objects.create(
        id=f"sub_{customer.id}_{int(created.timestamp())}",
        customer=customer,
        created=created,
        livemode=False,
        stripe_data={"status": status},
    )


@pytest.fixture
def tiers(db):
    pro = PaidTierFactory(slug="pro", name="Pro", base_price_cents=2900)
    team = PaidTierFactory(slug="team", name="Team", base_price_cents=9900)
    euro = PaidTierFactory(slug="euro", name="Euro", base_price_cents=1550, currency="eur")
    return pro, team, euro


def test_mrr_counts_active_and_past_due_base_prices_per_tier_and_currency(admin_client, tiers):
    pro, team, euro = tiers
    pro_accounts = [subscribed(pro, "active"), subscribed(pro, "active")]
    pro_accounts.append(subscribed(pro, "past_due"))
    team_accounts = [subscribed(team, "active"), subscribed(team, "trialing")]
    team_accounts.append(subscribed(team, "unpaid"))
    subscribed(euro, "active")
    # Ended or never started: no subscription, no revenue.
    AccountFactory(subscribed_tier=pro, payment_status="canceled")
    AccountFactory(subscribed_tier=team, payment_status="incomplete")
    AccountFactory()

    overview = operator_overview()

    rows = {row.revenue.name: row.revenue for row in overview.tiers}
    assert {name: (r.subscriptions, r.paying, r.mrr_cents) for name, r in rows.items()} == {
        "Pro": (3, 3, 8700),
        "Team": (3, 1, 9900),
        "Euro": (1, 1, 1550),
    }
    assert overview.mrr == {"usd": 18600, "eur": 1550}
    assert overview.subscriptions == 7
    page = page_of(admin_client)
    assert "$186.00" in page and "€15.50" in page
    assert re.search(r"7 active subscriptions", page)
    assert listed(admin_client, rows_url(overview, "Pro")) == set(pro_accounts)
    assert listed(admin_client, rows_url(overview, "Team")) == set(team_accounts)


def rows_url(overview, name: str) -> str:
    return next(row.url for row in overview.tiers if row.revenue.name == name)


def test_signups_and_conversions_fall_in_their_utc_week_at_its_boundaries(admin_client):
    monday = datetime.combine(week_start(timezone.now().date()), time(), tzinfo=UTC)
    last_second_of_last_week = monday - timedelta(seconds=1)
    this_week = [
        AccountFactory(created=monday),
        AccountFactory(created=monday + timedelta(hours=5)),
    ]
    last_week = [AccountFactory(created=last_second_of_last_week)]
    AccountFactory(created=monday - timedelta(weeks=13))  # before the overview's twelve weeks
    # Paying conversions: when the owner's first paying subscription started.
    paid_subscription(last_week[0], created=last_second_of_last_week)
    paid_subscription(last_week[0], created=monday + timedelta(hours=1))  # a second one
    paid_subscription(this_week[0], created=monday)
    paid_subscription(this_week[1], created=monday, status="incomplete_expired")  # never paid
    old = AccountFactory(created=monday - timedelta(weeks=20))
    paid_subscription(old, created=monday + timedelta(hours=2))

    weeks = {week.monday: week for week in operator_overview().weeks}

    assert len(weeks) == 12
    now_week, previous = weeks[monday.date()], weeks[(monday - timedelta(weeks=1)).date()]
    assert (now_week.signups, now_week.conversions) == (2, 2)
    assert (previous.signups, previous.conversions) == (1, 1)
    assert sum(week.signups for week in weeks.values()) == 3
    assert listed(admin_client, now_week.signups_url) == set(this_week)
    assert listed(admin_client, previous.signups_url) == set(last_week)
    assert listed(admin_client, now_week.conversions_url) == {this_week[0], old}
    assert listed(admin_client, previous.conversions_url) == set(last_week)


def test_a_conversion_is_the_paying_organisation_not_every_one_of_its_owner(admin_client):
    monday = datetime.combine(week_start(timezone.now().date()), time(), tzinfo=UTC)
    paying = AccountFactory(created=monday)
    AccountFactory(owner=paying.owner, created=monday)  # the same person's other organisation
    paid_subscription(paying, created=monday + timedelta(hours=1))
    # A customer without our metadata (made by hand in Stripe) counts by the account's link.
    linked = AccountFactory(created=monday)
    paid_subscription(linked, created=monday + timedelta(hours=2), metadata=False)

    week = next(w for w in operator_overview().weeks if w.monday == monday.date())

    assert (week.signups, week.conversions) == (3, 2)
    assert listed(admin_client, week.conversions_url) == {paying, linked}


def test_accounts_near_quota_are_listed_most_used_first_credits_included(admin_client):
    tier = PaidTierFactory(included_units=1000)
    at_85 = AccountFactory(tier=tier)
    UsageRollupFactory(account=at_85, units=850)
    over = AccountFactory(tier=tier)
    UsageRollupFactory(account=over, units=1200)
    credited = AccountFactory(tier=tier)  # 900 of 1,500: 60 %
    UsageRollupFactory(account=credited, units=900)
    QuotaCreditFactory(account=credited, units=500)
    last_period = AccountFactory(tier=tier)  # the usage was before this period began
    UsageRollupFactory(account=last_period, units=900, minute=timezone.now() - timedelta(days=2))
    AccountFactory(tier=tier)

    overview = operator_overview()

    assert [(row.account, row.usage.percent) for row in overview.near_quota] == [
        (over, 120),
        (at_85, 85),
    ]
    page = page_of(admin_client)
    assert "1,200 / 1,000 (120 %)" in page
    assert listed(admin_client, overview.near_quota_url) == {over, at_85}


def test_past_due_unpaid_and_failed_reports_each_link_to_their_accounts(admin_client):
    past_due = [AccountFactory(payment_status="past_due") for _ in range(2)]
    unpaid = AccountFactory(payment_status="unpaid")
    failing = AccountFactory()
    MeterReportFactory(account=failing, status=MeterReport.Status.FAILED)
    MeterReportFactory(
        account=failing,
        status=MeterReport.Status.STALE,
        window_start=timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3),
    )
    rejected = AccountFactory()
    MeterReportFactory(account=rejected, status=MeterReport.Status.REJECTED)
    MeterReportFactory(account=AccountFactory(), status=MeterReport.Status.SENT)

    overview = operator_overview()

    counts = {item.label: (item.count, item.url) for item in overview.attention}
    assert counts["Past due"][0] == 2
    assert listed(admin_client, counts["Past due"][1]) == set(past_due)
    assert counts["Unpaid"][0] == 1
    assert listed(admin_client, counts["Unpaid"][1]) == {unpaid}
    reports = counts["With usage reports that need an operator"]
    assert reports[0] == 2
    assert listed(admin_client, reports[1]) == {failing, rejected}
    by_status = {item.label: item for item in overview.report_links}
    failed = by_status[MeterReport.Status.FAILED.label]
    assert failed.count == 1
    response = admin_client.get(failed.url)
    assert [r.status for r in response.context["cl"].queryset] == ["failed"]
    page = page_of(admin_client)
    for _count, url in counts.values():
        assert f'href="{url.replace("&", "&amp;")}"' in page


def test_usage_trend_sums_every_account_per_utc_day_for_30_days(admin_client):
    today = timezone.now().replace(second=0, microsecond=0)
    UsageRollupFactory(units=40, minute=today)
    UsageRollupFactory(units=2, minute=today)
    UsageRollupFactory(units=7, minute=today - timedelta(days=3))
    UsageRollupFactory(units=500, minute=today - timedelta(days=31))  # outside the 30 days

    trend = operator_overview().trend

    assert len(trend.days) == 30
    assert trend.days[-1].day == today.date() and trend.days[-1].units == 42
    assert trend.days[-4].units == 7
    assert trend.total_units == 49
    page = page_of(admin_client)
    start = page.index('<svg class="overview-chart"')
    chart = page[start : page.index("</svg>", start)]
    assert chart.count('<rect class="bar"') == 30
    assert f"{today:%b} {today.day}: 42 units" in chart


def test_the_index_lists_meterdesks_apps_first_and_dj_stripe_collapsed_last(admin_client):
    page = page_of(admin_client)

    captions = re.findall(r'<div class="app-(\w+) module', page)
    assert captions[:3] == ["portal", "billing", "metering"]
    assert captions[-1] == "djstripe"
    details = page[page.index('<details class="stripe-records">') :]
    assert "<summary>Stripe (dj-stripe) records (" in details
    assert 'class="app-djstripe module' in details
    assert not re.search(r'class="app-(?!djstripe)\w+ module', details)
    assert admin_client.get("/admin/djstripe/").status_code == 200
    assert admin_client.get("/admin/djstripe/subscription/").status_code == 200


def test_the_queries_stay_the_same_with_many_more_accounts(admin_client, tiers):
    pro = tiers[0]

    def busy_accounts(count: int) -> None:
        for _ in range(count):
            account = subscribed(pro, "past_due", created=timezone.now() - timedelta(days=3))
            UsageRollupFactory(account=account, units=95_000)
            MeterReportFactory(account=account, status=MeterReport.Status.FAILED)
            paid_subscription(account, created=timezone.now() - timedelta(days=2))

    busy_accounts(2)
    admin_client.get(ADMIN)  # sessions, permissions and content types are warm now
    with CaptureQueriesContext(connection) as few:
        page_of(admin_client)
    busy_accounts(25)
    with CaptureQueriesContext(connection) as many:
        page = page_of(admin_client)

    assert len(many) == len(few)
    assert len(few) <= 20, [query["sql"][:120] for query in few.captured_queries]
    assert "27 active subscriptions" in page


def test_overview_figures_are_for_operators_who_may_view_accounts(client, tiers):
    subscribed(tiers[0], "active")
    viewer = StaffUserFactory(permissions=["portal.view_account"])
    client.force_login(viewer)
    assert "Monthly recurring revenue" in page_of(client)
    assert "Usage reports:" not in page_of(client)  # nor the report links, without their list

    other = StaffUserFactory(permissions=["billing.view_tier"])
    client.force_login(other)
    page = page_of(client)
    assert "Monthly recurring revenue" not in page
    assert "$29.00" not in page


def test_a_developer_gets_no_overview(client, owner, tiers):
    subscribed(tiers[0], "active")
    client.force_login(owner)

    response = client.get(ADMIN, follow=True)

    assert "Monthly recurring revenue" not in response.content.decode()
    assert urlsplit(response.redirect_chain[-1][0]).path != ADMIN


@pytest.mark.real_staff_login
def test_an_operator_who_skipped_the_second_factor_gets_no_overview(client, tiers):
    subscribed(tiers[0], "active")
    client.force_login(StaffUserFactory(is_superuser=True))  # signed in, no code given

    response = client.get(ADMIN)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "Monthly recurring revenue" not in client.get(ADMIN, follow=True).content.decode()


def test_a_paid_period_counts_from_its_own_start(admin_client):
    tier = PaidTierFactory(included_units=1000)
    now = timezone.now().replace(second=0, microsecond=0)
    paid = AccountFactory(
        tier=tier, period_start=now - timedelta(days=2), period_end=now + timedelta(days=28)
    )
    UsageRollupFactory(account=paid, units=850, minute=now - timedelta(hours=1))
    UsageRollupFactory(account=paid, units=900, minute=now - timedelta(days=3))  # last period
    under = AccountFactory(
        tier=tier, period_start=now - timedelta(days=2), period_end=now + timedelta(days=28)
    )
    UsageRollupFactory(account=under, units=100, minute=now - timedelta(hours=1))
    UsageRollupFactory(account=under, units=5000, minute=now - timedelta(days=3))

    near = operator_overview().near_quota

    assert [(row.account, row.usage.units, row.usage.percent) for row in near] == [(paid, 850, 85)]
