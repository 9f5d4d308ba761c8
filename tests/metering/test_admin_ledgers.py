"""The usage ledgers in the admin (rollups, alerts, credits): listed for operators, never
edited there — credits come only from the account's audited "grant extra units" action."""

import pytest
from django.urls import reverse

from tests.factories import (
    AccountFactory,
    ApiKeyFactory,
    QuotaCreditFactory,
    UsageAlertFactory,
    UsageRollupFactory,
)
from tests.portal.admin_actions import action_choices

LEDGERS = [
    ("usagerollup", UsageRollupFactory),
    ("usagealert", UsageAlertFactory),
    ("quotacredit", QuotaCreditFactory),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "factory"), LEDGERS)
def test_a_superuser_reads_the_ledger_but_cannot_add_change_or_delete(admin_client, model, factory):
    row = factory()
    changelist = reverse(f"admin:metering_{model}_changelist")

    listing = admin_client.get(changelist)
    detail = admin_client.get(reverse(f"admin:metering_{model}_change", args=[row.pk]))
    add = admin_client.get(reverse(f"admin:metering_{model}_add"))
    change = admin_client.post(reverse(f"admin:metering_{model}_change", args=[row.pk]), {})
    delete = admin_client.post(
        reverse(f"admin:metering_{model}_delete", args=[row.pk]), {"post": "yes"}
    )

    assert listing.status_code == 200
    assert row.account.owner.email in listing.content.decode()
    assert action_choices(listing) == set()
    assert detail.status_code == 200
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert type(row).objects.filter(pk=row.pk).exists()


@pytest.mark.django_db
def test_rollups_are_found_by_account_and_key_prefix(admin_client):
    key = ApiKeyFactory()
    mine = UsageRollupFactory(account=key.account, api_key=key, units=7)
    UsageRollupFactory()
    changelist = reverse("admin:metering_usagerollup_changelist")

    by_email = admin_client.get(changelist, {"q": key.account.owner.email}).context["cl"]
    by_prefix = admin_client.get(changelist, {"q": key.prefix}).context["cl"]
    by_account = admin_client.get(changelist, {"account__id__exact": key.account.pk}).context["cl"]

    assert list(by_email.result_list) == [mine]
    assert list(by_prefix.result_list) == [mine]
    assert list(by_account.result_list) == [mine]


@pytest.mark.django_db
def test_alerts_and_credits_are_filtered_to_one_account_from_its_page(admin_client):
    account = AccountFactory()
    alert = UsageAlertFactory(account=account, threshold=100)
    credit = QuotaCreditFactory(account=account)
    UsageAlertFactory()
    QuotaCreditFactory()

    def rows(model):
        url = reverse(f"admin:metering_{model}_changelist")
        return list(
            admin_client.get(url, {"account__id__exact": account.pk}).context["cl"].result_list
        )

    assert rows("usagealert") == [alert]
    assert rows("quotacredit") == [credit]
