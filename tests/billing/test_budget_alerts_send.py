"""``budget_alerts_send`` (the beat job): each amount a developer chose is emailed once per
billing period when the period's usage charges reach it, however often the job runs."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from billing.models import BudgetAlert
from billing.services.budgets import budget_alerts_send
from tests.billing.money_fixtures import capped_tier, subscribe, use
from tests.factories import AccountFactory, BudgetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def budgeted(account):
    """A $10 usage budget (emails at 50, 80 and 100 %) on a tier capped at $20 of usage."""
    subscribe(account, capped_tier())
    BudgetFactory(account=account, amount_cents=1000, alert_percents=[50, 80, 100])
    return account


def test_run_twice_one_email(budgeted, mailoutbox):
    use(budgeted, 1000 + 1200)  # 1,200 units past the included: $6.00

    first = budget_alerts_send()
    second = budget_alerts_send()

    assert len(mailoutbox) == 1
    assert [a.status for a in first] == ["sent"] and second == []
    alert = BudgetAlert.objects.get(account=budgeted)
    assert (alert.threshold_cents, alert.spent_cents, alert.budget_cents) == (500, 600, 1000)
    message = mailoutbox[0]
    assert message.to == [budgeted.email]
    assert "$5.00 (50% of your $10.00 budget)" in message.subject
    assert "Usage charges so far (exact): $6.00" in message.body
    assert "spend cap of $20.00" in message.body
    html = message.alternatives[0][0]
    assert "<strong>$5.00</strong>" in html and "spend cap of $20.00" in html


def test_amounts_crossed_at_once_send_one_email_for_the_highest(budgeted, mailoutbox):
    use(budgeted, 1000 + 1700)  # $8.50: past 50 % and 80 %

    budget_alerts_send()

    assert len(mailoutbox) == 1 and "$8.00 (80% of your $10.00 budget)" in mailoutbox[0].subject
    statuses = dict(
        BudgetAlert.objects.filter(account=budgeted).values_list("threshold_cents", "status")
    )
    assert statuses == {500: "skipped", 800: "sent"}


def test_the_next_amount_is_emailed_when_the_usage_reaches_it(budgeted, mailoutbox):
    use(budgeted, 1000 + 1100)  # $5.50
    budget_alerts_send()
    use(budgeted, 1000, at=timezone.now() - timedelta(minutes=30))  # $10.50
    budget_alerts_send()
    budget_alerts_send()

    assert [m.subject.split("(")[1] for m in mailoutbox] == [
        "50% of your $10.00 budget)",
        "100% of your $10.00 budget)",
    ]


def test_a_custom_amount_is_emailed_too(account, mailoutbox):
    subscribe(account, capped_tier())
    BudgetFactory(account=account, amount_cents=1000, alert_percents=[], alert_amounts_cents=[150])
    use(account, 1000 + 320)  # $1.60

    budget_alerts_send()

    assert len(mailoutbox) == 1
    assert "reached $1.50 (15% of your $10.00 budget)" in mailoutbox[0].subject


def test_a_failed_send_is_retried_by_the_next_run(budgeted, mailoutbox, monkeypatch):
    use(budgeted, 1000 + 1100)

    def refuse(self, *args, **kwargs):
        raise OSError("SMTP down")

    with monkeypatch.context() as patched:
        patched.setattr(mail.EmailMultiAlternatives, "send", refuse)
        budget_alerts_send()
    alert = BudgetAlert.objects.get(account=budgeted)
    assert (alert.status, alert.last_error) == ("failed", "OSError: SMTP down")

    budget_alerts_send()
    budget_alerts_send()

    alert.refresh_from_db()
    assert (alert.status, alert.attempts, len(mailoutbox)) == ("sent", 2, 1)


def test_a_new_period_arms_every_amount_again(budgeted, mailoutbox):
    use(budgeted, 1000 + 1100)
    budget_alerts_send()
    later = timezone.now() + timedelta(days=21)  # the next period, 1 day in
    use(budgeted, 1000 + 1100, at=later - timedelta(hours=1))
    budgeted.period_start = budgeted.period_end
    budgeted.period_end = budgeted.period_start + timedelta(days=30)
    budgeted.save()

    budget_alerts_send(now=later)

    assert len(mailoutbox) == 2
    assert BudgetAlert.objects.filter(account=budgeted, threshold_cents=500).count() == 2


def test_below_every_amount_or_without_a_subscription_nothing_is_sent(budgeted, mailoutbox):
    use(budgeted, 1000 + 900)  # $4.50
    unsubscribed = AccountFactory()
    BudgetFactory(account=unsubscribed, amount_cents=100)

    assert budget_alerts_send() == []
    assert mailoutbox == [] and not BudgetAlert.objects.exists()
