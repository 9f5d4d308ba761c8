"""The usage report run against the Stripe emulator: every rolled-up unit of a subscribed account
reaches Stripe once, in one meter event per account and window; free usage never does."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import MeterReport
from billing.services.reports import usage_report_run
from metering.hotpath import policy_for
from metering.limiter.base import usage_minute
from metering.models import UsageRollup
from portal.models import Account
from portal.periods import add_months
from portal.selectors import api_principal_build
from tests.factories import AccountFactory, ApiKeyFactory, MeterReportFactory
from tests.usage_reporting import (
    hour_floor,
    reported_units,
    stripe_subscription_started,
    stripe_total,
)

pytestmark = pytest.mark.django_db

METER_EVENTS = "/v1/billing/meter_events"


def _period_ended_ten_minutes_ago(subscribed_account) -> tuple[Account, datetime, datetime]:
    """A subscribed account whose period ended ten minutes before ``now`` (twenty past an
    hour, so no hour boundary lies between the period's end and the runs), reported hourly
    up to the last hour boundary before that end. Returns (account, now, end)."""
    now = hour_floor(timezone.now()) - timedelta(minutes=40)
    end = now - timedelta(minutes=10)
    account = subscribed_account()
    # As the renewal webhook leaves it: the new period started when the old one ended.
    Account.objects.filter(pk=account.pk).update(period_start=end, period_end=add_months(end, 1))
    MeterReportFactory(
        account=account,
        window_start=add_months(end, -1),
        window_end=hour_floor(end),
        status=MeterReport.Status.SENT,
    )
    return account, now, end


def test_hourly_runs_send_each_accounts_units_once_per_window(
    reporting_stripe, subscribed_account, add_usage
):
    first, second = subscribed_account(), subscribed_account()
    base = hour_floor(timezone.now()) - timedelta(hours=4)
    for offset, units in [(10, 5), (70, 7), (75, 1), (130, 11)]:
        add_usage(first, base + timedelta(minutes=offset), units)
        add_usage(second, base + timedelta(minutes=offset), units * 2, endpoint="compute")

    for hour in (1, 2, 3):
        usage_report_run(now=base + timedelta(hours=hour, minutes=6))

    assert stripe_total(reporting_stripe, first) == 24
    assert stripe_total(reporting_stripe, second) == 48
    # One meter event per account and window, not one per request or per rollup row.
    assert reporting_stripe.request_count(METER_EVENTS) == 6
    windows = list(
        MeterReport.objects.filter(account=first)
        .order_by("window_start")
        .values_list("window_end", "units", "status")
    )
    assert windows == [
        (base + timedelta(hours=1), 5, "sent"),
        (base + timedelta(hours=2), 8, "sent"),
        (base + timedelta(hours=3), 11, "sent"),
    ]
    assert not UsageRollup.objects.filter(account=first, meter_report__isnull=True).exists()


def test_a_window_is_reported_only_after_it_closed_and_the_grace_passed(
    reporting_stripe, subscribed_account, add_usage
):
    account = subscribed_account()
    hour = hour_floor(timezone.now()) - timedelta(hours=2)
    add_usage(account, hour + timedelta(minutes=59), 4)

    usage_report_run(now=hour + timedelta(hours=1, minutes=2))  # closed, but within the grace
    assert stripe_total(reporting_stripe, account) == 0

    usage_report_run(now=hour + timedelta(hours=1, minutes=6))
    assert stripe_total(reporting_stripe, account) == 4


def test_running_again_sends_nothing_more(reporting_stripe, subscribed_account, add_usage):
    account = subscribed_account()
    add_usage(account, timezone.now() - timedelta(hours=3), 9)
    usage_report_run()
    calls = reporting_stripe.request_count(METER_EVENTS)

    result = usage_report_run()

    assert result.accounts == 0
    assert reporting_stripe.request_count(METER_EVENTS) == calls == 1
    assert stripe_total(reporting_stripe, account) == 9


def test_free_accounts_are_rolled_up_but_never_reported(reporting_stripe, add_usage):
    free = AccountFactory()
    add_usage(free, timezone.now() - timedelta(hours=3), 50)

    usage_report_run()

    assert reporting_stripe.request_count(METER_EVENTS) == 0
    assert not MeterReport.objects.exists()
    assert UsageRollup.objects.get(account=free).meter_report is None


def test_usage_before_the_subscription_started_is_never_billed(
    reporting_stripe, subscribed_account, add_usage
):
    account = subscribed_account(days_into_period=2 / 24)  # upgraded two hours ago
    add_usage(account, timezone.now() - timedelta(hours=5), 30)  # still on the free tier
    add_usage(account, timezone.now() - timedelta(minutes=100), 12)

    usage_report_run()

    assert stripe_total(reporting_stripe, account) == 12
    assert reported_units(account) == 12


def test_an_upgrade_minutes_ago_reports_none_of_the_free_usage_before_it(
    reporting_stripe, subscribed_account, add_usage
):
    account = subscribed_account(days_into_period=2 / (24 * 60))  # within the report's grace
    add_usage(account, timezone.now() - timedelta(hours=3), 30)

    usage_report_run()

    assert not MeterReport.objects.exists()
    assert reporting_stripe.request_count(METER_EVENTS) == 0


def test_usage_just_after_an_upgrade_late_in_an_hour_is_billed_once_that_hour_closes(
    reporting_stripe, subscribed_account, add_usage
):
    # Upgraded 27 seconds before an hour began: calls after it count from the next minute (the
    # limiter's rule, so the minute of the upgrade holds only free usage), which is the new hour.
    hour = hour_floor(timezone.now()) - timedelta(hours=3)
    started = hour - timedelta(seconds=27)
    account = subscribed_account()
    Account.objects.filter(pk=account.pk).update(
        period_start=started, period_end=add_months(started, 1)
    )
    stripe_subscription_started(account, started)
    add_usage(account, started, 20)  # the free calls just before the upgrade, same minute
    account.refresh_from_db()
    admitted_at = started + timedelta(seconds=1)
    principal = api_principal_build(ApiKeyFactory(account=account), now=admitted_at)
    paid_minute = datetime.fromtimestamp(
        usage_minute(admitted_at.timestamp(), policy_for(principal)), UTC
    )
    assert paid_minute == hour
    add_usage(account, paid_minute, 25)

    usage_report_run(now=started + timedelta(hours=1, minutes=5))  # that hour is still open
    assert stripe_total(reporting_stripe, account) == 0

    usage_report_run(now=hour + timedelta(hours=1, minutes=6))
    assert stripe_total(reporting_stripe, account) == 25
    assert reported_units(account) == 25


def test_a_period_that_ended_gets_its_final_window_within_minutes(
    reporting_stripe, subscribed_account, add_usage
):
    account, now, end = _period_ended_ten_minutes_ago(subscribed_account)
    add_usage(account, end - timedelta(minutes=1), 6)  # the period's last minute
    add_usage(account, end + timedelta(minutes=1), 100)  # the next period's first

    result = usage_report_run(now=now, period_close_only=True)

    final = MeterReport.objects.get(account=account, window_end=end)
    assert (final.units, final.status) == (6, MeterReport.Status.SENT)
    assert final.event_time < end  # billed in the period that ended
    assert stripe_total(reporting_stripe, account) == 6
    assert result.accounts == 1


def test_a_periods_first_and_only_usage_in_its_last_minutes_is_billed_in_that_period(
    reporting_stripe, subscribed_account, add_usage
):
    # Twenty past an hour, so no hour boundary lies between the period's end and the run.
    now = hour_floor(timezone.now()) - timedelta(minutes=40)
    end = now - timedelta(minutes=10)
    account = subscribed_account()
    Account.objects.filter(pk=account.pk).update(period_start=end, period_end=add_months(end, 1))
    # Never reported (no usage until the period's last minutes): when the subscription
    # started comes from dj-stripe's copy of it.
    stripe_subscription_started(account, add_months(end, -1) + timedelta(days=3))
    add_usage(account, add_months(end, -1) + timedelta(days=2), 50)  # still on the free tier
    add_usage(account, end - timedelta(minutes=4), 7)

    usage_report_run(now=now, period_close_only=True)

    final = MeterReport.objects.get(account=account)
    assert (final.window_end, final.units) == (end, 7)
    assert stripe_total(reporting_stripe, account) == 7


def test_a_new_subscription_after_a_gap_does_not_bill_the_gap(
    reporting_stripe, subscribed_account, add_usage
):
    now = timezone.now()
    account = subscribed_account(days_into_period=1)
    period_start = Account.objects.get(pk=account.pk).period_start
    # An earlier subscription was reported until a week before; it was canceled, the account
    # used the free tier, and subscribed again a day ago.
    MeterReportFactory(
        account=account,
        window_start=period_start - timedelta(days=9),
        window_end=period_start - timedelta(days=7),
        status=MeterReport.Status.SENT,
    )
    stripe_subscription_started(account, period_start)
    add_usage(account, period_start - timedelta(days=3), 80)  # the free stretch
    add_usage(account, now - timedelta(hours=3), 4)

    usage_report_run()

    assert stripe_total(reporting_stripe, account) == 4
    assert UsageRollup.objects.get(account=account, units=80).meter_report is None


def test_a_canceled_subscription_still_reports_its_last_window(
    reporting_stripe, subscribed_account, add_usage
):
    now = timezone.now()
    ended = now - timedelta(minutes=8)
    account = subscribed_account()
    MeterReportFactory(
        account=account,
        window_start=ended - timedelta(days=3),
        window_end=hour_floor(ended),
        status=MeterReport.Status.SENT,
    )
    # As billing.services leaves an account whose subscription ended.
    Account.objects.filter(pk=account.pk).update(
        payment_status=Account.PaymentStatus.CANCELED, period_start=ended, period_end=None
    )
    add_usage(account, ended - timedelta(minutes=2), 3)
    add_usage(account, ended + timedelta(minutes=2), 40)  # on the free tier again

    usage_report_run(now=now)

    assert stripe_total(reporting_stripe, account) == 3
    assert UsageRollup.objects.get(account=account, units=40).meter_report is None


def test_a_rollup_that_came_in_late_is_carried_by_the_next_window_of_its_period(
    reporting_stripe, subscribed_account, add_usage
):
    account = subscribed_account()
    base = hour_floor(timezone.now()) - timedelta(hours=3)
    add_usage(account, base + timedelta(minutes=5), 2)
    usage_report_run(now=base + timedelta(hours=1, minutes=6))
    # The rollup job was behind: a minute of the window already reported lands now.
    add_usage(account, base + timedelta(minutes=50), 5)
    add_usage(account, base + timedelta(minutes=65), 1)

    usage_report_run(now=base + timedelta(hours=2, minutes=6))

    assert stripe_total(reporting_stripe, account) == 8
    assert reported_units(account) == 8


def test_a_window_older_than_stripe_accepts_is_flagged_stale_and_not_sent(
    reporting_stripe, subscribed_account, add_usage
):
    account = subscribed_account()
    start = timezone.now() - timedelta(days=36)
    old = MeterReportFactory(
        account=account,
        window_start=start,
        window_end=start + timedelta(hours=1),
        stripe_customer_id=account.stripe_customer.id,
        event_name=settings.STRIPE_METER_EVENT_NAME,
        identifier=MeterReport.identifier_for(account.pk, start),
        attempts=3,
        status=MeterReport.Status.FAILED,
    )

    usage_report_run()

    old.refresh_from_db()
    assert old.status == MeterReport.Status.STALE
    assert "35 days" in old.last_error
    assert reporting_stripe.request_count(METER_EVENTS) == 0


def test_an_unconfirmed_report_past_stripes_duplicate_window_goes_to_an_operator(
    reporting_stripe, subscribed_account
):
    account = subscribed_account()
    start = hour_floor(timezone.now()) - timedelta(hours=30)
    report = MeterReportFactory(
        account=account,
        window_start=start,
        window_end=start + timedelta(hours=1),
        stripe_customer_id=account.stripe_customer.id,
        event_name=settings.STRIPE_METER_EVENT_NAME,
        created=start + timedelta(hours=1, minutes=5),
        attempts=1,  # tried once, outcome unknown (a timeout)
        status=MeterReport.Status.PENDING,
    )

    usage_report_run()

    report.refresh_from_db()
    assert report.status == MeterReport.Status.STALE
    assert "duplicate window" in report.last_error
    assert reporting_stripe.request_count(METER_EVENTS) == 0


def test_usage_rolled_up_after_its_periods_final_window_is_reported_on_its_own(
    reporting_stripe, subscribed_account, add_usage
):
    account, now, end = _period_ended_ten_minutes_ago(subscribed_account)
    add_usage(account, end - timedelta(minutes=6), 6)
    usage_report_run(now=now, period_close_only=True)
    # The rollup job was minutes behind: the period's last minutes land after its final window.
    add_usage(account, end - timedelta(minutes=1), 9)
    add_usage(account, end - timedelta(minutes=2), 1)

    usage_report_run(now=now + timedelta(minutes=4), period_close_only=True)

    late = MeterReport.objects.get(account=account, sequence=1)
    assert (late.units, late.status) == (10, MeterReport.Status.SENT)
    assert late.window_end == end and late.event_time < end  # billed in the period it was used
    assert late.identifier == MeterReport.identifier_for(account.pk, late.window_start, 1)
    assert stripe_total(reporting_stripe, account) == 16

    usage_report_run(now=now + timedelta(minutes=8))

    assert stripe_total(reporting_stripe, account) == 16
    assert MeterReport.objects.filter(account=account).count() == 3


def test_free_usage_before_a_subscription_stays_unbilled_after_its_period_closes(
    reporting_stripe, subscribed_account, add_usage
):
    now = hour_floor(timezone.now()) - timedelta(minutes=40)
    end = now - timedelta(minutes=10)
    account = subscribed_account()
    Account.objects.filter(pk=account.pk).update(period_start=end, period_end=add_months(end, 1))
    started = end - timedelta(days=3)
    stripe_subscription_started(account, started)
    add_usage(account, started - timedelta(hours=5), 50)  # still on the free tier
    add_usage(account, end - timedelta(minutes=30), 7)

    usage_report_run(now=now, period_close_only=True)
    usage_report_run(now=now + timedelta(minutes=30))

    assert stripe_total(reporting_stripe, account) == 7
    assert UsageRollup.objects.get(account=account, units=50).meter_report is None
