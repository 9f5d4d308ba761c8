"""The operator audit log: written by the services, read-only in the admin for everyone."""

import pytest
from django.urls import reverse

from portal.audit import audit_record
from portal.models import AuditEntry
from tests.factories import AccountFactory, StaffUserFactory
from tests.portal.admin_actions import action_choices


@pytest.fixture
def entry(admin_user):
    account = AccountFactory()
    return audit_record(
        actor=admin_user,
        action="account.tier_change",
        account=account,
        before={"tier": "free"},
        after={"tier": "pro"},
        reason="Upgrade deal",
    )


@pytest.mark.django_db
def test_audit_record_keeps_who_what_and_before_after(entry, admin_user):
    stored = AuditEntry.objects.get()

    assert stored.actor == admin_user
    assert stored.target == entry.account.owner.email
    assert (stored.before, stored.after) == ({"tier": "free"}, {"tier": "pro"})
    assert stored.created is not None


@pytest.mark.django_db
def test_an_entry_cannot_be_rewritten_or_deleted_in_code_either(entry):
    entry.reason = "Rewritten history"

    with pytest.raises(ValueError, match="never changed"):
        entry.save()
    with pytest.raises(ValueError, match="never deleted"):
        entry.delete()

    assert AuditEntry.objects.get().reason == "Upgrade deal"


@pytest.mark.django_db
def test_a_superuser_cannot_add_change_or_delete_entries(admin_client, entry):
    change_url = reverse("admin:portal_auditentry_change", args=[entry.pk])

    add = admin_client.get(reverse("admin:portal_auditentry_add"))
    change = admin_client.post(change_url, {"action": "forged", "reason": "", "target": "x"})
    delete = admin_client.post(
        reverse("admin:portal_auditentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    bulk_delete = admin_client.post(
        reverse("admin:portal_auditentry_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    listing = admin_client.get(reverse("admin:portal_auditentry_changelist"))

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert bulk_delete.status_code in (200, 302)
    assert action_choices(listing) == set()
    assert not listing.context["has_add_permission"]
    stored = AuditEntry.objects.get()
    assert (stored.action, stored.reason) == ("account.tier_change", "Upgrade deal")


@pytest.mark.django_db
def test_an_entry_reads_with_its_before_and_after(admin_client, entry):
    page = admin_client.get(reverse("admin:portal_auditentry_change", args=[entry.pk]))

    body = page.content.decode()
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert "&quot;tier&quot;: &quot;free&quot;" in body
    assert "&quot;tier&quot;: &quot;pro&quot;" in body
    assert "Upgrade deal" in body


@pytest.mark.django_db
def test_the_log_is_filtered_by_action_and_actor_and_searched_by_account_email(
    admin_client, admin_user, entry
):
    other = audit_record(
        actor=StaffUserFactory(),
        action="account.suspend",
        account=AccountFactory(),
        before={"status": "active"},
        after={"status": "suspended"},
    )
    url = reverse("admin:portal_auditentry_changelist")

    def listed(**params):
        return {row.pk for row in admin_client.get(url, params).context["cl"].result_list}

    assert listed() == {entry.pk, other.pk}
    assert listed(action="account.suspend") == {other.pk}
    assert listed(actor__id__exact=admin_user.pk) == {entry.pk}
    assert listed(q=entry.account.owner.email) == {entry.pk}


@pytest.mark.django_db
def test_staff_need_the_view_permission_to_read_it(client, entry):
    client.force_login(StaffUserFactory(permissions=["portal.view_account"]))
    assert client.get(reverse("admin:portal_auditentry_changelist")).status_code == 403

    client.force_login(StaffUserFactory(permissions=["portal.view_auditentry"]))
    assert client.get(reverse("admin:portal_auditentry_changelist")).status_code == 200


@pytest.mark.django_db
def test_the_log_survives_the_accounts_deletion(entry):
    email = entry.account.owner.email

    entry.account.owner.delete()

    stored = AuditEntry.objects.get()
    assert stored.account is None
    assert stored.target == email
