"""manage.py enforce_billing_grace (and its Celery task)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.tasks import account_enforce_grace_task
from tests.factories import AccountFactory, PaidTierFactory


@pytest.fixture
def overdue(db):
    pro = PaidTierFactory(slug="pro")
    return AccountFactory(
        tier=pro,
        subscribed_tier=pro,
        payment_status="past_due",
        grace_until=timezone.now() - timedelta(minutes=1),
    )


@pytest.mark.django_db
def test_the_command_moves_accounts_whose_grace_ended(overdue):
    out = StringIO()

    call_command("enforce_billing_grace", stdout=out)

    overdue.refresh_from_db()
    assert overdue.tier.is_default
    assert overdue.subscribed_tier.slug == "pro"
    assert f"account {overdue.pk} moved to the default tier" in out.getvalue()


@pytest.mark.django_db
def test_the_task_is_idempotent(overdue):
    assert account_enforce_grace_task.delay().get() == 1
    assert account_enforce_grace_task.delay().get() == 0
