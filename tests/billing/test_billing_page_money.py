"""GET /billing/ and the dashboard: this period's spend so far, the projection, the next invoice
line by line, the spend cap in money, and the budget; nobody sees another developer's."""

import pytest
from django.test import Client

from tests.billing.money_fixtures import capped_tier, subscribe, use
from tests.factories import BudgetFactory, TierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def spending(account):
    """Ten days into a 30-day period on the capped tier: 1,600 units, 600 past the included
    ($3.00 of usage)."""
    subscribe(account, capped_tier())
    use(account, 1600)
    return account


def test_the_billing_page_shows_spend_so_far_projection_and_invoice(owner_client, spending):
    response = owner_client.get("/billing/")
    page = response.content.decode()

    projection = response.context["projection"]
    assert (projection.usage_cents, projection.spent_cents) == (300, 3200)
    assert 'data-testid="spent-so-far">$32.00<' in page
    assert "$29.00 base + <span" in page and ">$3.00</span> usage, exact as of" in page
    # 1,600 units in 10 days, 20 days to go: about 4,800 units (the cap stops calls at 5,000),
    # 3,800 past the included: $19.00.
    assert projection.projected_units in (4799, 4800)
    assert projection.projected_usage_cents == 1900
    assert 'data-testid="projected-spend">$48.00<' in page
    assert 'data-testid="projected-invoice">$48.00<' in page  # $19.00 usage + next $29.00 base
    assert 'data-testid="invoice-so-far">$32.00<' in page
    assert "Capped base" in page and "the next period, billed in advance" in page


def test_the_cap_is_shown_in_money_on_the_billing_page_and_the_dashboard(owner_client, spending):
    billing = owner_client.get("/billing/").content.decode()
    dashboard = owner_client.get("/dashboard/").content.decode()

    cap = "Spend cap: usage charges stop at <strong>$20.00</strong> a period (4,000 units past"
    assert cap in billing and cap in dashboard
    assert "Spend cap $20.00 of usage a period" in billing
    assert 'data-testid="tier-spend-cap">Spend cap $20.00 of usage a period' in dashboard


def test_the_dashboard_shows_the_periods_money_with_a_link_to_the_detail(owner_client, spending):
    page = owner_client.get("/dashboard/").content.decode()

    assert 'data-testid="spent-so-far">$32.00<' in page
    assert 'data-testid="projected-invoice">$48.00<' in page
    assert 'href="/billing/#money-title"' in page
    assert 'data-testid="projection-lines"' not in page


def test_the_budget_is_shown_against_the_usage_charges(owner_client, spending):
    BudgetFactory(account=spending, amount_cents=500, alert_percents=[50, 80, 100])

    page = owner_client.get("/billing/").content.decode()

    assert "Budget: <strong>$3.00</strong> of $5.00 in usage charges (60 %)" in page
    assert "heading for $19.00" in page and "Next email at $4.00." in page
    assert 'value="5.00"' in page and "Update budget" in page


def test_a_free_developer_sees_no_projection_and_no_budget(owner_client, account):
    page = owner_client.get("/billing/").content.decode()

    assert 'data-testid="money"' not in page and 'data-testid="budget"' not in page


def test_an_operator_set_capped_tier_still_shows_its_cap_in_money(owner_client, account):
    account.tier = capped_tier()
    account.save()

    page = owner_client.get("/billing/").content.decode()

    assert 'data-testid="plan-spend-cap">Spend cap $20.00 of usage a period' in page
    assert 'data-testid="money"' not in page


def test_an_outsider_never_sees_the_owners_money(spending, outsider):
    BudgetFactory(account=spending, amount_cents=500)
    intruder = Client()
    intruder.force_login(outsider)
    outsider.owned_accounts.get().tier = TierFactory()
    outsider.owned_accounts.get().save()

    for path in ("/billing/", "/dashboard/"):
        page = intruder.get(path).content.decode()
        assert "$32.00" not in page and "$5.00" not in page
        assert 'data-testid="money"' not in page
