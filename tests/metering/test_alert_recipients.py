"""Who an organisation's alert emails reach (``portal.selectors.account_alert_recipients``):
its owners and billing members, and whoever else opted in, minus whoever opted out; each
address once, all in one message. The usage alerts, the budget alerts and the billing emails
all go there; the organisation-wide opt-out of the courtesy usage alerts still holds."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.emails import payment_failed_email
from billing.models import Tier
from billing.services.budgets import budget_alerts_send
from metering.alerts import usage_alerts_run
from metering.models import UsageAlert, UsageRollup
from portal.models import Account, Role
from portal.selectors import account_alert_recipients
from tests.billing.money_fixtures import capped_tier, subscribe, use
from tests.factories import (
    BudgetFactory,
    MembershipFactory,
    TierFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(account) -> Account:
    """The owner (joined first), a billing member, a developer, a developer who asked for the
    alerts and a billing member who asked not to get them."""
    for email, role, receives_alerts in [
        ("billing@example.com", Role.BILLING, None),
        ("dev@example.com", Role.DEVELOPER, None),
        ("on-call@example.com", Role.DEVELOPER, True),
        ("accounts@example.com", Role.BILLING, False),
    ]:
        MembershipFactory(
            account=account,
            user=UserFactory(email=email),
            role=role,
            receives_alerts=receives_alerts,
        )
    return account


def expected(team: Account) -> list[str]:
    return [team.owner.email, "billing@example.com", "on-call@example.com"]


def test_owners_billing_and_the_opted_in_get_alerts_and_the_opted_out_do_not(team):
    assert account_alert_recipients(team) == expected(team)


def test_an_admin_who_opted_in_is_told_once_and_a_deactivated_member_not_at_all(team):
    admin = MembershipFactory(account=team, role=Role.ADMIN, receives_alerts=True)
    gone = MembershipFactory(account=team, role=Role.OWNER, user=UserFactory(is_active=False))

    recipients = account_alert_recipients(team)

    assert recipients == [*expected(team), admin.user.email]
    assert gone.user.email not in recipients


def test_when_everyone_opted_out_the_primary_owner_still_hears(account):
    account.memberships.update(receives_alerts=False)
    MembershipFactory(account=account, role=Role.BILLING, receives_alerts=False)

    assert account_alert_recipients(account) == [account.owner.email]


def test_another_organisation_members_are_not_told(team, outsider):
    other = outsider.owned_accounts.get()
    MembershipFactory(
        account=other, user=UserFactory(email="elsewhere@example.com"), role=Role.BILLING
    )

    assert "elsewhere@example.com" not in account_alert_recipients(team)
    assert outsider.email not in account_alert_recipients(team)


def _used(account: Account, units: int) -> None:
    minute = (timezone.now() - timedelta(minutes=10)).replace(second=0, microsecond=0)
    UsageRollup.objects.create(
        account=account, endpoint="lookup", minute=minute, units=units, requests=units
    )


@pytest.fixture
def blocked_team(team) -> Account:
    """The team on 1,000 included units, refused past them, a day into its period."""
    tier = TierFactory(included_units=1000, overage_policy=Tier.OveragePolicy.BLOCK)
    Account.objects.filter(pk=team.pk).update(
        tier=tier, period_start=timezone.now() - timedelta(days=1)
    )
    team.refresh_from_db()
    return team


def test_a_usage_alert_is_one_email_to_every_recipient(blocked_team, mailoutbox):
    _used(blocked_team, 850)

    usage_alerts_run()

    assert [message.to for message in mailoutbox] == [expected(blocked_team)]
    assert "85% of your included API units" in mailoutbox[0].subject


def test_the_organisation_opt_out_still_skips_the_courtesy_alert_only(blocked_team, mailoutbox):
    Account.objects.filter(pk=blocked_team.pk).update(alerts_opt_out=True)
    _used(blocked_team, 850)
    usage_alerts_run()
    _used(blocked_team, 200)
    usage_alerts_run()

    alerts = UsageAlert.objects.filter(account=blocked_team).order_by("threshold")
    assert [(a.threshold, a.status) for a in alerts] == [(80, "skipped"), (100, "sent")]
    assert [message.to for message in mailoutbox] == [expected(blocked_team)]


def test_a_budget_alert_goes_to_the_same_people(team, mailoutbox):
    subscribe(team, capped_tier())
    BudgetFactory(account=team, amount_cents=1000, alert_percents=[50])
    use(team, 1000 + 1200)  # $6.00 of usage charges

    budget_alerts_send()

    assert [message.to for message in mailoutbox] == [expected(team)]


def test_a_failed_payment_email_goes_to_the_same_people(team, mailoutbox):
    payment_failed_email(team)

    assert [message.to for message in mailoutbox] == [expected(team)]
