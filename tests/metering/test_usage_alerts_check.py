"""Usage alerts: one email per threshold and period, claimed before it is sent, retried when the
mail server fails, re-armed by a new period; the developer may opt out of the courtesy ones."""

from datetime import timedelta
from decimal import Decimal
from smtplib import SMTPException

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from billing.models import Tier
from metering.alerts import usage_alerts_run
from metering.models import UsageAlert, UsageRollup
from portal.models import Account
from tests.factories import AccountFactory, QuotaCreditFactory, TierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def blocked_account():
    """A free-style account: 1,000 included units, refused past them; its period began a day ago."""
    tier = TierFactory(included_units=1000, overage_policy=Tier.OveragePolicy.BLOCK)
    return AccountFactory(tier=tier, period_start=timezone.now() - timedelta(days=1))


def use(account: Account, units: int, minutes_ago: int = 10) -> None:
    minute = (timezone.now() - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
    UsageRollup.objects.create(
        account=account, endpoint="lookup", minute=minute, units=units, requests=units
    )


def test_crossing_80_100_and_120_percent_sends_three_emails_once_each(blocked_account):
    use(blocked_account, 799)
    usage_alerts_run()
    assert mail.outbox == []

    use(blocked_account, 1, minutes_ago=9)  # 800 of 1,000
    usage_alerts_run()
    use(blocked_account, 200, minutes_ago=8)  # 1,000
    usage_alerts_run()
    usage_alerts_run()  # nothing new
    use(blocked_account, 200, minutes_ago=7)  # 1,200
    usage_alerts_run()
    usage_alerts_run()

    assert [message.to for message in mail.outbox] == [[blocked_account.email]] * 3
    subjects = [message.subject for message in mail.outbox]
    assert "80%" in subjects[0]
    assert "calls are refused" in subjects[1]
    assert "calls are refused" in subjects[2]
    alerts = UsageAlert.objects.filter(account=blocked_account).order_by("threshold")
    assert [(a.threshold, a.status, a.attempts) for a in alerts] == [
        (80, "sent", 1),
        (100, "sent", 1),
        (120, "sent", 1),
    ]


def test_running_the_job_again_sends_nothing(blocked_account):
    use(blocked_account, 850)
    usage_alerts_run()
    assert len(mail.outbox) == 1

    for _ in range(3):
        usage_alerts_run()

    assert len(mail.outbox) == 1


def test_thresholds_crossed_at_once_make_one_email_for_the_highest(blocked_account):
    use(blocked_account, 1300)  # from nothing to 130 % between two runs

    usage_alerts_run()
    usage_alerts_run()

    assert len(mail.outbox) == 1
    assert "calls are refused" in mail.outbox[0].subject
    statuses = dict(UsageAlert.objects.values_list("threshold", "status"))
    assert statuses == {80: "skipped", 100: "skipped", 120: "sent"}


def test_a_new_period_arms_every_threshold_again(blocked_account):
    use(blocked_account, 850, minutes_ago=60 * 20)
    usage_alerts_run()
    assert len(mail.outbox) == 1

    # The period renews: it now starts ten minutes ago.
    Account.objects.filter(pk=blocked_account.pk).update(
        period_start=timezone.now() - timedelta(minutes=10)
    )
    use(blocked_account, 820, minutes_ago=5)
    usage_alerts_run()

    assert len(mail.outbox) == 2
    periods = set(UsageAlert.objects.values_list("period_start", flat=True))
    assert len(periods) == 2


def test_opting_out_skips_the_courtesy_alert_but_not_the_essential_ones(blocked_account):
    Account.objects.filter(pk=blocked_account.pk).update(alerts_opt_out=True)
    use(blocked_account, 900)
    usage_alerts_run()
    assert mail.outbox == []
    assert UsageAlert.objects.get(threshold=80).status == UsageAlert.Status.SKIPPED

    use(blocked_account, 150, minutes_ago=5)
    usage_alerts_run()

    assert len(mail.outbox) == 1
    assert "calls are refused" in mail.outbox[0].subject


def test_a_failed_send_is_retried_by_the_next_run_and_sent_once(blocked_account, monkeypatch):
    use(blocked_account, 820)
    real_send = EmailMultiAlternatives.send

    def refused(self, fail_silently=False):
        raise SMTPException("421 try again later")

    monkeypatch.setattr(EmailMultiAlternatives, "send", refused)
    usage_alerts_run()
    alert = UsageAlert.objects.get(account=blocked_account)
    assert (alert.status, alert.attempts) == (UsageAlert.Status.FAILED, 1)
    assert "421" in alert.last_error

    monkeypatch.setattr(EmailMultiAlternatives, "send", real_send)
    usage_alerts_run()
    usage_alerts_run()

    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == (UsageAlert.Status.SENT, 2)
    assert len(mail.outbox) == 1


def test_thresholds_come_from_the_tier(blocked_account):
    Tier.objects.filter(pk=blocked_account.tier_id).update(alert_thresholds=[50, "oops", 90])
    use(blocked_account, 600)
    usage_alerts_run()

    assert list(UsageAlert.objects.values_list("threshold", flat=True)) == [50]


def test_operator_credits_raise_the_quota_the_percentages_are_of(blocked_account):
    QuotaCreditFactory(
        account=blocked_account, period_start=blocked_account.current_period()[0], units=1000
    )
    use(blocked_account, 1500)  # 75 % of 2,000
    usage_alerts_run()

    assert mail.outbox == []


def test_the_email_says_usage_quota_overage_price_and_where_to_upgrade(settings):
    settings.SITE_URL = "https://portal.example.com"
    tier = TierFactory(
        included_units=10_000,
        overage_policy=Tier.OveragePolicy.BILL,
        overage_unit_price_cents=Decimal("0.05"),
        base_price_cents=4900,
    )
    account = AccountFactory(tier=tier, period_start=timezone.now() - timedelta(days=1))
    use(account, 12_500)
    usage_alerts_run()

    [last] = mail.outbox
    assert isinstance(last, EmailMultiAlternatives)
    text = last.body
    html = last.alternatives[0][0]
    assert isinstance(html, str)
    assert "125%" in last.subject
    assert "12,500 of the 10,000" in text
    assert "$0.50 per 1,000 units" in text
    assert "2,500 units past your included ones" in text and "$1.25" in text
    assert "https://portal.example.com/pricing/" in text
    assert "https://portal.example.com/pricing/" in html
    assert "refused" not in text


def test_the_blocking_email_says_calls_stop_until_the_period_renews(blocked_account):
    use(blocked_account, 1000)
    usage_alerts_run()

    text = mail.outbox[-1].body
    assert "API calls are refused until your period renews" in text
    assert "turn it off" not in text  # the essential alert has no opt-out


def test_accounts_without_included_units_get_no_alerts():
    tier = TierFactory(included_units=0, overage_policy=Tier.OveragePolicy.BILL)
    account = AccountFactory(tier=tier, period_start=timezone.now() - timedelta(days=1))
    use(account, 500)

    usage_alerts_run()

    assert mail.outbox == []
    assert not UsageAlert.objects.exists()
