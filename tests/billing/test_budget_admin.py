"""The admin's *Budgets* and *Budget alerts*: operators read them; nobody types them in."""

import pytest
from django.urls import reverse

from tests.billing.money_fixtures import capped_tier, subscribe
from tests.factories import BudgetAlertFactory, BudgetFactory

pytestmark = pytest.mark.django_db


def test_operators_read_budgets_and_their_emails_and_change_nothing(admin_client, account):
    subscribe(account, capped_tier())
    budget = BudgetFactory(account=account, amount_cents=1250)
    BudgetAlertFactory(account=account, threshold_cents=625, status="sent")

    budgets = admin_client.get(reverse("admin:billing_budget_changelist")).content.decode()
    alerts = admin_client.get(reverse("admin:billing_budgetalert_changelist")).content.decode()

    assert account.email in budgets and "$12.50" in budgets
    assert "625" in alerts and "Sent" in alerts
    assert admin_client.get(reverse("admin:billing_budget_add")).status_code == 403
    change = admin_client.post(
        reverse("admin:billing_budget_change", args=[budget.pk]), {"amount_cents": 1}
    )
    assert change.status_code == 403
    budget.refresh_from_db()
    assert budget.amount_cents == 1250
