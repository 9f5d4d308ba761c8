"""Admin action: re-send an account's failed (and stale) usage reports to Stripe."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import MeterReport
from billing.services.reports import MAX_TRIES
from portal.models import AuditEntry
from tests.factories import AccountFactory, MeterReportFactory
from tests.portal.admin_actions import messages_of
from tests.usage_reporting import hour_floor, stripe_total


def failed_report(account, *, hours_ago: int, units: int, status=MeterReport.Status.FAILED):
    start = hour_floor(timezone.now()) - timedelta(hours=hours_ago)
    return MeterReportFactory(
        account=account,
        window_start=start,
        window_end=start + timedelta(hours=1),
        units=units,
        identifier=MeterReport.identifier_for(account.pk, start),
        stripe_customer_id=account.stripe_customer.id,
        status=status,
        attempts=3,
        last_error="APIError: HTTP 500",
    )


def resend(client, accounts):
    return client.post(
        "/admin/portal/account/",
        {"action": "resend_reports", "_selected_action": [a.pk for a in accounts], "index": 0},
        follow=True,
    )


@pytest.mark.django_db
def test_failed_reports_reach_stripe_once_with_one_audit_entry(
    admin_client, admin_user, subscribed_account, reporting_stripe
):
    account = subscribed_account()
    older = failed_report(account, hours_ago=5, units=7)
    newer = failed_report(account, hours_ago=3, units=11, status=MeterReport.Status.STALE)
    sent = failed_report(account, hours_ago=2, units=13, status=MeterReport.Status.SENT)

    response = resend(admin_client, [account])

    for report in (older, newer):
        report.refresh_from_db()
        assert report.status == MeterReport.Status.SENT
    assert stripe_total(reporting_stripe, account) == 18  # the sent one was not sent again
    sent.refresh_from_db()
    assert sent.attempts == 3
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.account, entry.actor) == (
        "account.reports_resend",
        account,
        admin_user,
    )
    assert entry.before == {"reports": {older.identifier: "failed", newer.identifier: "stale"}}
    assert entry.after == {"reports": {older.identifier: "sent", newer.identifier: "sent"}}
    assert any(m.startswith("Re-sent the failed usage reports of") for m in messages_of(response))


@pytest.mark.django_db
def test_resending_twice_counts_once_at_stripe(admin_client, subscribed_account, reporting_stripe):
    account = subscribed_account()
    report = failed_report(account, hours_ago=4, units=9)
    resend(admin_client, [account])
    # As if the mark had been lost after Stripe took the event.
    MeterReport.objects.filter(pk=report.pk).update(status=MeterReport.Status.FAILED)

    resend(admin_client, [account])

    report.refresh_from_db()
    assert report.status == MeterReport.Status.SENT
    assert stripe_total(reporting_stripe, account) == 9
    assert AuditEntry.objects.count() == 2


@pytest.mark.django_db
def test_a_report_stripe_still_refuses_stays_failed_and_the_operator_is_told(
    admin_client, subscribed_account, reporting_stripe
):
    account = subscribed_account()
    report = failed_report(account, hours_ago=4, units=9)
    reporting_stripe.inject_fault("/v1/billing/meter_events", status=500, count=MAX_TRIES)

    response = resend(admin_client, [account])

    report.refresh_from_db()
    assert report.status == MeterReport.Status.FAILED
    assert stripe_total(reporting_stripe, account) == 0
    assert AuditEntry.objects.get().after == {"reports": {report.identifier: "failed"}}
    warning = next(m for m in messages_of(response) if "not sent" in m)
    assert report.identifier in warning


@pytest.mark.django_db
def test_an_account_without_failed_reports_is_not_audited(admin_client):
    account = AccountFactory()

    response = resend(admin_client, [account])

    assert not AuditEntry.objects.exists()
    assert any("No failed or stale usage reports" in m for m in messages_of(response))
