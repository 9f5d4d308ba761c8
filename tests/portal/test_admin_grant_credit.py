"""Admin action: grant extra units for the current period (a credit, with who and why)."""

import pytest

from metering.models import QuotaCredit
from portal.models import AuditEntry
from tests.factories import AccountFactory, ApiKeyFactory, QuotaCreditFactory, TierFactory
from tests.portal.admin_actions import api_get, apply_action, messages_of, run_action


@pytest.mark.django_db
def test_granting_grows_the_quota_at_once_with_one_audit_entry(admin_client, admin_user, client):
    key = ApiKeyFactory()
    account = key.account
    assert api_get(client, key.plaintext).json()["limits"]["quota_units"] == 1000  # cached

    response = run_action(
        admin_client, "grant_credit", [account], units="500", reason="Outage on 3 March"
    )

    credit = QuotaCredit.objects.get()
    assert credit.account == account
    assert credit.units == 500
    assert credit.reason == "Outage on 3 March"
    assert credit.granted_by == admin_user
    assert credit.period_start == account.current_period()[0]
    assert api_get(client, key.plaintext).json()["limits"]["quota_units"] == 1500
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.account, entry.actor) == (
        "account.credit_grant",
        account,
        admin_user,
    )
    assert entry.before == {"credited_units": 0, "quota": 1000}
    assert entry.after == {"credited_units": 500, "quota": 1500}
    assert entry.reason == "Outage on 3 March"
    assert any(m.startswith("Granted 500 extra units") for m in messages_of(response))


@pytest.mark.django_db
def test_a_free_account_refused_for_its_quota_can_call_again_at_once(admin_client, client):
    key = ApiKeyFactory(account=AccountFactory(tier=TierFactory(included_units=2)))

    def lookup():
        return api_get(client, key.plaintext, "/v1/lookup?q=7")

    assert [lookup().status_code for _ in range(3)] == [200, 200, 429]

    run_action(admin_client, "grant_credit", [key.account], units="1", reason="Demo tomorrow")

    assert [lookup().status_code for _ in range(2)] == [200, 429]


@pytest.mark.django_db
def test_credits_add_up_within_a_period(admin_client):
    account = AccountFactory()
    QuotaCreditFactory(account=account, units=100)

    run_action(admin_client, "grant_credit", [account], units="250", reason="More goodwill")

    entry = AuditEntry.objects.get()
    assert entry.before == {"credited_units": 100, "quota": 1100}
    assert entry.after == {"credited_units": 350, "quota": 1350}


@pytest.mark.django_db
def test_each_selected_account_gets_its_own_credit_and_entry(admin_client):
    accounts = AccountFactory.create_batch(3)

    run_action(admin_client, "grant_credit", accounts, units="10", reason="Beta testers")

    assert sorted(QuotaCredit.objects.values_list("account", flat=True)) == sorted(
        account.pk for account in accounts
    )
    assert AuditEntry.objects.filter(action="account.credit_grant").count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("units", "reason", "field"),
    [
        ("0", "Zero", "units"),
        ("-5", "Negative", "units"),
        ("ten", "Not a number", "units"),
        ("10000000000", "Typo", "units"),
        ("10", "", "reason"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_granted(admin_client, units, reason, field):
    account = AccountFactory()

    response = apply_action(admin_client, "grant_credit", [account], units=units, reason=reason)

    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert not QuotaCredit.objects.exists()
    assert not AuditEntry.objects.exists()
