"""The usage report ledger in the admin: operators see what went to Stripe, filter the reports
that need them, and re-send a failed one; a sent one is never sent again."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing.models import MeterReport
from portal.models import AuditEntry
from tests.factories import MeterReportFactory
from tests.usage_reporting import hour_floor, stripe_total

CHANGELIST = reverse("admin:billing_meterreport_changelist")
METER_EVENTS = "/v1/billing/meter_events"


def _report(account, *, hours_ago: int = 3, **fields) -> MeterReport:
    start = hour_floor(timezone.now()) - timedelta(hours=hours_ago)
    return MeterReportFactory(
        account=account,
        window_start=start,
        window_end=start + timedelta(hours=1),
        identifier=MeterReport.identifier_for(account.pk, start),
        stripe_customer_id=account.stripe_customer.id,
        event_name=settings.STRIPE_METER_EVENT_NAME,
        **fields,
    )


def _resend(admin_client, *reports):
    return admin_client.post(
        CHANGELIST,
        {"action": "resend_failed", "_selected_action": [r.pk for r in reports]},
        follow=True,
    )


@pytest.mark.django_db
def test_the_list_shows_account_window_units_identifier_status_attempts_and_error(
    admin_client, subscribed_account
):
    account = subscribed_account()
    _report(account, units=1234, status="failed", attempts=5, last_error="APIError: HTTP 500")

    page = admin_client.get(CHANGELIST).content.decode()

    for text in (account.owner.email, "1234", f"mdk-{account.pk}-", "Failed", "APIError: HTTP 500"):
        assert text in page


@pytest.mark.django_db
def test_the_status_filter_finds_the_reports_an_operator_must_settle(
    admin_client, subscribed_account
):
    account = subscribed_account()
    stale = _report(account, hours_ago=5, status="stale", last_error="older than 35 days")
    sent = _report(account, hours_ago=4, status="sent")

    page = admin_client.get(CHANGELIST, {"status__exact": "stale"}).content.decode()

    assert stale.identifier in page
    assert sent.identifier not in page


@pytest.mark.django_db
def test_resending_a_failed_report_gets_it_to_stripe_and_is_audited(
    admin_client, admin_user, subscribed_account, reporting_stripe
):
    account = subscribed_account()
    report = _report(account, units=40, status="failed", attempts=5, last_error="timeout")

    page = _resend(admin_client, report).content.decode()

    report.refresh_from_db()
    assert report.status == MeterReport.Status.SENT
    assert f"Sent {report.identifier}: Stripe has its 40 units." in page
    assert stripe_total(reporting_stripe, account) == 40
    entry = AuditEntry.objects.get(action="meter_report.resend")
    assert (entry.actor, entry.target) == (admin_user, report.identifier)
    assert entry.after["status"] == "sent"


@pytest.mark.django_db
def test_resending_a_sent_report_is_refused_and_calls_nobody(
    admin_client, subscribed_account, reporting_stripe
):
    account = subscribed_account()
    report = _report(account, status="sent", sent_at=timezone.now())

    page = _resend(admin_client, report).content.decode()

    assert f"Not sent again: {report.identifier} was already sent" in page
    assert reporting_stripe.request_count(METER_EVENTS) == 0


@pytest.mark.django_db
def test_a_resend_stripe_still_refuses_stays_failed_with_the_reason(
    admin_client, subscribed_account, reporting_stripe, settings
):
    settings.USAGE_REPORT_BACKOFF_MS = 0
    account = subscribed_account()
    report = _report(account, status="failed")
    reporting_stripe.inject_fault(METER_EVENTS, status=500, count=10)

    page = _resend(admin_client, report).content.decode()

    report.refresh_from_db()
    assert report.status == MeterReport.Status.FAILED
    assert f"Still failed: {report.identifier}: APIError: HTTP 500" in page
    assert stripe_total(reporting_stripe, account) == 0


@pytest.mark.django_db
def test_the_ledger_is_read_only(admin_client, subscribed_account):
    report = _report(subscribed_account(), status="sent")

    detail = admin_client.get(reverse("admin:billing_meterreport_change", args=[report.pk]))
    add = admin_client.get(reverse("admin:billing_meterreport_add"))
    changed = admin_client.post(
        reverse("admin:billing_meterreport_change", args=[report.pk]), {"units": 1}
    )

    assert detail.status_code == 200
    assert add.status_code == 403
    assert changed.status_code == 403
    report.refresh_from_db()
    assert report.units == 10


@pytest.mark.django_db
def test_developers_cannot_open_the_ledger(owner_client):
    response = owner_client.get(CHANGELIST)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
