"""account_billing_periods: the periods a developer can look back on — monthly free periods from
signup, a paid period from an upgrade, renewals — and tier switches inside a period, which start
no new one."""

from datetime import UTC, datetime, timedelta

import pytest

from billing.models import TierSwitch
from metering.selectors import account_billing_periods, billing_period_at
from portal.models import AccountPeriod
from portal.services import account_period_begin
from tests.factories import AccountFactory, PaidTierFactory, TierFactory

pytestmark = pytest.mark.django_db

SIGNUP = datetime(2026, 8, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def free():
    return TierFactory(name="Free", included_units=100)


@pytest.fixture
def account(free):
    account = AccountFactory(tier=free, period_start=SIGNUP)
    account_period_begin(account=account)
    return account


def spans(periods):
    return [(p.start, p.end, p.tier_name, p.current) for p in periods]


def test_a_free_account_has_a_month_from_signup_each_month(account):
    periods = account_billing_periods(account, now=SIGNUP + timedelta(days=70))

    assert spans(periods) == [
        (
            datetime(2026, 10, 10, 9, tzinfo=UTC),
            datetime(2026, 11, 10, 9, tzinfo=UTC),
            "Free",
            True,
        ),
        (
            datetime(2026, 9, 10, 9, tzinfo=UTC),
            datetime(2026, 10, 10, 9, tzinfo=UTC),
            "Free",
            False,
        ),
        (SIGNUP, datetime(2026, 9, 10, 9, tzinfo=UTC), "Free", False),
    ]


def test_an_upgrade_cuts_the_free_period_and_begins_a_paid_one(account):
    pro = PaidTierFactory(name="Pro", included_units=10_000)
    upgrade = datetime(2026, 9, 25, 14, 30, 1, tzinfo=UTC)
    account.tier, account.period_start = pro, upgrade
    account.period_end = datetime(2026, 10, 25, 14, 30, tzinfo=UTC)
    account.save()
    account_period_begin(account=account)

    periods = account_billing_periods(account, now=datetime(2026, 10, 1, tzinfo=UTC))

    assert spans(periods) == [
        (upgrade, account.period_end, "Pro", True),
        (datetime(2026, 9, 10, 9, tzinfo=UTC), upgrade, "Free", False),
        (SIGNUP, datetime(2026, 9, 10, 9, tzinfo=UTC), "Free", False),
    ]
    assert periods[0].included_units == 10_000
    assert billing_period_at(account, datetime(2026, 9, 20, tzinfo=UTC)) == periods[1]


def test_a_tier_switch_stays_in_its_period_and_sets_its_quota(account):
    pro = PaidTierFactory(name="Pro", included_units=10_000)
    team = PaidTierFactory(name="Team", included_units=50_000)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    account.tier, account.period_start = pro, start
    account.period_end = datetime(2026, 10, 1, tzinfo=UTC)
    account.save()
    account_period_begin(account=account)
    split = datetime(2026, 9, 12, 10, 5, tzinfo=UTC)
    TierSwitch.objects.create(
        account=account,
        from_tier=pro,
        to_tier=team,
        stripe_subscription_id="sub_1",
        effective_at=split,
        status=TierSwitch.Status.APPLIED,
    )
    # What billing.services.switch does: only the quota's start moves.
    account.period_start = split
    account.save(update_fields=["period_start"])

    current, *_ = account_billing_periods(account, now=datetime(2026, 9, 20, tzinfo=UTC))

    assert (current.start, current.end, current.tier_name) == (start, account.period_end, "Pro")
    assert [(s.at, s.tier_name) for s in current.switches] == [(split, "Team")]
    assert (current.quota_start, current.included_units) == (split, 50_000)
    # The next month is Team's from its start.
    later, *_ = account_billing_periods(account, now=datetime(2026, 10, 20, tzinfo=UTC))
    assert (later.start, later.tier_name, later.switches) == (account.period_end, "Team", ())


def test_a_period_recorded_later_than_a_new_one_is_dropped(account):
    """An operator's cancellation is first recorded when Stripe ended the subscription, then
    dated back to the minute billing stopped."""
    ended = SIGNUP + timedelta(days=3, minutes=2)
    account.period_start = ended
    account.save(update_fields=["period_start"])
    account_period_begin(account=account)
    account.period_start = ended - timedelta(minutes=2)
    account_period_begin(account=account)

    assert list(AccountPeriod.objects.filter(account=account).values_list("start", flat=True)) == [
        SIGNUP,
        ended - timedelta(minutes=2),
    ]


def test_an_account_without_records_has_its_own_period(free):
    account = AccountFactory(tier=free, period_start=SIGNUP)

    (period,) = account_billing_periods(account, now=SIGNUP + timedelta(days=1))

    assert (period.start, period.current, period.tier_name) == (SIGNUP, True, "Free")


def test_signup_records_the_first_period(db):
    from django.contrib.auth.models import User

    from portal.services import account_create

    account = account_create(owner=User.objects.create_user("new", "new@example.com"))

    assert list(AccountPeriod.objects.filter(account=account).values_list("start", "end")) == [
        (account.period_start, None)
    ]
