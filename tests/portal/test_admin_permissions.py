"""Who sees what in the operators' admin: staff see only what their permissions allow."""

import pytest
from django.urls import reverse

from portal.models import Account, AuditEntry
from tests.factories import AccountFactory, PaidTierFactory, StaffUserFactory, UserFactory
from tests.portal.admin_actions import (
    action_choices,
    apply_action,
    changelist_url,
    choose_action,
    messages_of,
)

ALL_ACTIONS = {
    "suspend",
    "reinstate",
    "revoke_keys",
    "change_tier",
    "grant_credit",
    "resend_reports",
    "resync_stripe",
    "cancel_subscription_now",
}


def staff_client(client, *permissions):
    client.force_login(StaffUserFactory(permissions=["portal.view_account", *permissions]))
    return client


@pytest.mark.django_db
def test_a_superuser_sees_every_action_and_no_add_or_delete(admin_client):
    AccountFactory()

    response = admin_client.get(changelist_url())

    assert response.status_code == 200
    assert action_choices(response) == ALL_ACTIONS
    assert not response.context["has_add_permission"]
    assert admin_client.get(reverse("admin:portal_account_add")).status_code == 403


@pytest.mark.django_db
def test_view_only_staff_see_accounts_but_no_actions_and_cannot_change(client):
    account = AccountFactory(name="Before")
    staff_client(client)

    listing = client.get(changelist_url())
    change_url = reverse("admin:portal_account_change", args=[account.pk])
    page = client.get(change_url)
    post = client.post(change_url, {"name": "After"})

    assert listing.status_code == 200
    assert account.owner.email in listing.content.decode()
    assert action_choices(listing) == set()
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert post.status_code == 403
    account.refresh_from_db()
    assert account.name == "Before"


@pytest.mark.django_db
def test_view_only_staff_cannot_run_an_action_by_posting_it(client):
    account = AccountFactory()
    staff_client(client)

    response = apply_action(client, "suspend", [account], reason="Not allowed")

    # The list has no actions for this user, so the POST only shows the list again.
    assert response.status_code == 200
    account.refresh_from_db()
    assert account.is_active
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_suspend_permission_offers_only_suspend_and_reinstate(client):
    account = AccountFactory()
    staff_client(client, "portal.suspend_account")

    choices = action_choices(client.get(changelist_url()))
    choose_action(client, "suspend", [account])
    apply_action(client, "suspend", [account], reason="Abuse")
    refused = apply_action(client, "change_tier", [account], tier=PaidTierFactory().pk)

    assert choices == {"suspend", "reinstate"}
    account.refresh_from_db()
    assert account.status == Account.Status.SUSPENDED
    assert account.tier.slug == "free"
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["account.suspend"]
    assert "No action selected." in messages_of(refused)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("permission", "actions"),
    [
        ("revoke_keys", {"revoke_keys"}),
        ("change_tier", {"change_tier"}),
        ("grant_credit", {"grant_credit"}),
        ("resend_reports", {"resend_reports"}),
        ("resync_stripe", {"resync_stripe"}),
    ],
)
def test_each_permission_offers_its_own_action_only(client, permission, actions):
    AccountFactory()
    staff_client(client, f"portal.{permission}")

    assert action_choices(client.get(changelist_url())) == actions


@pytest.mark.django_db
def test_staff_without_account_permissions_are_refused(client):
    client.force_login(StaffUserFactory())

    assert client.get(changelist_url()).status_code == 403


@pytest.mark.django_db
def test_a_developer_is_sent_to_the_admin_login(client):
    client.force_login(UserFactory())

    response = client.get(changelist_url())

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_staff_do_not_see_key_or_credit_inlines_without_their_view_permission(client):
    account = AccountFactory()
    staff_client(client)

    page = client.get(reverse("admin:portal_account_change", args=[account.pk]))
    inline_models = {
        formset.formset.model.__name__ for formset in page.context["inline_admin_formsets"]
    }

    assert inline_models == set()
    client.force_login(StaffUserFactory(permissions=["portal.view_account", "portal.view_apikey"]))
    page = client.get(reverse("admin:portal_account_change", args=[account.pk]))
    inline_models = {
        formset.formset.model.__name__ for formset in page.context["inline_admin_formsets"]
    }
    assert inline_models == {"ApiKey"}
