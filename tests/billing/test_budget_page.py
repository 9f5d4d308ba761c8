"""POST /billing/budget/ — the budget form on the billing page: the developer's own budget, in
money, up to the tier's spend cap; bad input is a 400 with the reason beside the field."""

import pytest
from django.test import Client

from billing.models import Budget
from tests.billing.money_fixtures import capped_tier, subscribe
from tests.factories import BudgetFactory

pytestmark = pytest.mark.django_db

URL = "/billing/budget/"


@pytest.fixture
def capped(account):
    return subscribe(account, capped_tier())


def test_the_owner_sets_a_budget_in_money(owner_client, capped):
    response = owner_client.post(
        URL, {"amount": "12.50", "alert_percents": ["50", "100"], "alert_amounts": "3, $7.25"}
    )

    assert response.status_code == 303
    assert response["Location"] == "/billing/#budget"
    budget = Budget.objects.get(account=capped)
    assert budget.amount_cents == 1250
    assert budget.alert_points_cents() == [300, 625, 725, 1250]
    page = owner_client.get("/billing/").content.decode()
    assert "Budget set: $12.50 of usage charges a period." in page
    assert 'value="12.50"' in page and "3.00, 7.25" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "20.01", "alert_percents": ["50"]}, "spend cap of $20.00"),
        ({"amount": "-5", "alert_percents": ["50"]}, "The budget must be more than zero."),
        ({"amount": "ten", "alert_percents": ["50"]}, "Enter the budget as an amount"),
        ({"amount": "5.001", "alert_percents": ["50"]}, "whole cents"),
        ({"amount": "5"}, "Choose at least one amount to be emailed at."),
        ({"amount": "5", "alert_amounts": "3, lots"}, "“lots” is not an amount"),
        ({"amount": "5", "alert_amounts": "25"}, "$25.00 is above the spend cap of $20.00"),
        ({"amount": "5", "alert_percents": ["66"]}, "Select a valid choice"),
    ],
)
def test_bad_input_is_a_400_with_the_reason_and_changes_nothing(
    owner_client, capped, data, message
):
    BudgetFactory(account=capped, amount_cents=700)

    response = owner_client.post(URL, data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert Budget.objects.get(account=capped).amount_cents == 700


def test_a_tier_that_bills_no_usage_is_told_so(owner_client, account):
    response = owner_client.post(URL, {"amount": "5", "alert_percents": ["50"]})

    assert response.status_code == 400
    assert "bills no usage past its included units" in response.content.decode()
    assert not Budget.objects.exists()


def test_an_outsider_reaches_only_their_own_budget(capped, outsider):
    BudgetFactory(account=capped, amount_cents=700)
    subscribe(outsider.owned_accounts.get(), capped_tier(slug="outsider-tier"))
    intruder = Client()
    intruder.force_login(outsider)

    intruder.post(URL, {"amount": "1", "alert_percents": ["100"]})
    intruder.post(URL, {"action": "remove"})
    page = intruder.get("/billing/").content.decode()

    assert Budget.objects.get(account=capped).amount_cents == 700
    assert not Budget.objects.filter(account=outsider.owned_accounts.get()).exists()
    assert "$7.00" not in page


def test_the_owner_removes_the_budget(owner_client, capped):
    BudgetFactory(account=capped)

    response = owner_client.post(URL, {"action": "remove"})

    assert response.status_code == 303
    assert not Budget.objects.filter(account=capped).exists()


def test_signed_out_visitors_are_sent_to_log_in_and_get_is_not_allowed(owner_client):
    assert Client().post(URL, {"amount": "5"}).status_code == 302
    assert owner_client.get(URL).status_code == 405
