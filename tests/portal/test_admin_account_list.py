"""The operators' account list and page: usage vs quota at a glance, search, filters."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.models import MeterReport
from portal.models import Account, AuditEntry
from tests.factories import (
    AccountFactory,
    ApiKeyFactory,
    MeterReportFactory,
    PaidTierFactory,
    QuotaCreditFactory,
    StripeCustomerFactory,
    UsageRollupFactory,
)
from tests.portal.admin_actions import changelist_url


def listed(client, **params) -> list[Account]:
    response = client.get(changelist_url(), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def row_of(client, account: Account) -> str:
    """The usage cell of the account's row, as the operator reads it."""
    response = client.get(changelist_url(), {"q": account.owner.email})
    admin = response.context["cl"].model_admin
    (row,) = response.context["cl"].result_list
    return str(admin.usage_vs_quota(row))


@pytest.mark.django_db
def test_each_row_shows_usage_against_quota_for_the_current_period(admin_client):
    now = timezone.now()
    account = AccountFactory(
        tier=PaidTierFactory(included_units=10_000), period_start=now - timedelta(days=3)
    )
    UsageRollupFactory(account=account, units=1_000, minute=now - timedelta(minutes=5))
    UsageRollupFactory(account=account, units=234, minute=now - timedelta(minutes=4))
    # Before the period: not this period's usage.
    UsageRollupFactory(account=account, units=99_999, minute=now - timedelta(days=40))

    assert row_of(admin_client, account) == "1,234 / 10,000 (12 %)"


@pytest.mark.django_db
def test_credits_raise_the_quota_and_overuse_stands_out(admin_client):
    account = AccountFactory(period_start=timezone.now() - timedelta(days=3))  # 1,000 included
    QuotaCreditFactory(account=account, units=500)
    UsageRollupFactory(account=account, units=1_800)

    assert row_of(admin_client, account) == "<strong>1,800 / 1,500 (120 %)</strong>"


@pytest.mark.django_db
def test_the_list_costs_the_same_queries_for_3_or_30_accounts(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(changelist_url()).status_code == 200
        return len(captured)

    # No password: hashing 30 of them would be most of this test's time.
    for account in AccountFactory.create_batch(3, owner__password=None):
        UsageRollupFactory(account=account, units=5)
        QuotaCreditFactory(account=account)
    few = queries()
    for account in AccountFactory.create_batch(27, owner__password=None):
        UsageRollupFactory(account=account, units=5)
        QuotaCreditFactory(account=account)

    assert queries() == few


@pytest.mark.django_db
def test_search_by_email_key_prefix_whole_key_or_stripe_customer(admin_client):
    key = ApiKeyFactory()
    account = key.account
    customer = AccountFactory(stripe_customer=StripeCustomerFactory(id="cus_Abc123"))
    AccountFactory.create_batch(2)

    assert listed(admin_client, q=account.owner.email) == [account]
    assert listed(admin_client, q=key.prefix) == [account]
    assert listed(admin_client, q=key.plaintext) == [account]
    assert listed(admin_client, q="cus_Abc123") == [customer]


@pytest.mark.django_db
def test_filters_by_tier_status_and_payment_status(admin_client):
    pro = PaidTierFactory()
    paying = AccountFactory(tier=pro, payment_status=Account.PaymentStatus.PAST_DUE)
    suspended = AccountFactory(status=Account.Status.SUSPENDED, suspended_reason="Abuse")
    AccountFactory()

    assert listed(admin_client, tier__id__exact=pro.pk) == [paying]
    assert listed(admin_client, status__exact="suspended") == [suspended]
    assert listed(admin_client, payment_status__exact="past_due") == [paying]


@pytest.mark.django_db
def test_the_account_page_shows_keys_without_secrets_and_recent_reports(admin_client):
    key = ApiKeyFactory()
    account = key.account
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=30)
    for hour in range(25):
        MeterReportFactory(
            account=account,
            window_start=start + timedelta(hours=hour),
            window_end=start + timedelta(hours=hour + 1),
        )

    page = admin_client.get(reverse("admin:portal_account_change", args=[account.pk]))

    body = page.content.decode()
    assert page.status_code == 200
    assert key.prefix in body
    assert key.secret_hash not in body
    reports = next(
        f for f in page.context["inline_admin_formsets"] if f.formset.model is MeterReport
    )
    shown = [form.instance.window_start for form in reports.formset.forms]
    assert len(shown) == 20
    assert max(shown) == start + timedelta(hours=24)


@pytest.mark.django_db
def test_renaming_an_account_is_audited(admin_client, admin_user):
    account = AccountFactory(name="Old name")
    url = reverse("admin:portal_account_change", args=[account.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {"name": "Acme Ltd"}
    for formset in admin_client.get(url).context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})

    response = admin_client.post(url, data)

    assert response.status_code == 302, form.errors
    account.refresh_from_db()
    assert account.name == "Acme Ltd"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor) == ("account.rename", admin_user)
    assert (entry.before, entry.after) == ({"name": "Old name"}, {"name": "Acme Ltd"})


@pytest.mark.django_db
def test_the_admin_says_whose_it_is(admin_client):
    page = admin_client.get(reverse("admin:index"))

    assert "Meterdesk operations" in page.content.decode()
