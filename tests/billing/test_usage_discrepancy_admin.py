"""Billing > Usage discrepancies: what the usage reconcile found, and the operator's "settled"."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import UsageDiscrepancy
from portal.models import AuditEntry
from tests.factories import AccountFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:billing_usagediscrepancy_changelist"


def discrepancy(**fields):
    account = AccountFactory()
    start = account.current_period()[0]
    values = {
        "account": account,
        "period_start": start,
        "period_end": start + timedelta(days=30),
        "compared_until": start + timedelta(days=3),
        "ours_units": 12,
        "stripe_units": 16,
        "difference": 4,
        "amount_cents": 250,
        "resolution": "2026-01-01 04:41: 2026-01-01 02:00 to 03:00: Stripe has 4 units more",
    }
    return UsageDiscrepancy.objects.create(**{**values, **fields})


def settle(client, rows):
    return client.post(
        reverse(CHANGELIST),
        {"action": "mark_settled", "_selected_action": [row.pk for row in rows], "index": 0},
        follow=True,
    )


def test_the_list_shows_the_figures_and_the_signed_amount(admin_client):
    more = discrepancy()
    fewer = discrepancy(ours_units=20, stripe_units=7, difference=-13, amount_cents=-130)

    page = admin_client.get(reverse(CHANGELIST), {"state": "open"}).content.decode()

    assert "$2.50" in page
    assert "-$1.30" in page
    assert "Stripe has 4 units more" in page
    detail = admin_client.get(reverse("admin:billing_usagediscrepancy_change", args=[fewer.pk]))
    assert reverse("admin:portal_account_money_audit", args=[fewer.account_id]) in (
        detail.content.decode()
    )
    assert more.is_open and fewer.is_open


def test_an_operator_marks_a_discrepancy_settled_once_with_an_audit_entry(admin_client, admin_user):
    row = discrepancy(missed_invoice=True)

    settle(admin_client, [row])
    settle(admin_client, [row])  # already settled: nothing more happens

    row.refresh_from_db()
    assert row.resolved is not None and row.resolved <= timezone.now()
    assert row.resolution.splitlines()[0].endswith(f"settled by {admin_user.email}")
    entry = AuditEntry.objects.get(action="usage_discrepancy.settle")
    assert (entry.actor, entry.account, entry.after["amount_cents"]) == (
        admin_user,
        row.account,
        250,
    )


def test_view_only_staff_cannot_settle(client):
    row = discrepancy()
    client.force_login(StaffUserFactory(permissions=["billing.view_usagediscrepancy"]))

    assert client.get(reverse(CHANGELIST)).status_code == 200
    settle(client, [row])

    row.refresh_from_db()
    assert row.resolved is None
    assert not AuditEntry.objects.filter(action="usage_discrepancy.settle").exists()
