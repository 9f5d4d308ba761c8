"""Operators and an organisation's members in the admin (issue 17: "Operators see organisations,
members and roles in the admin, and can add or remove a member with an audit entry"): the members
under each account and a count in the list, a search by any member's email, the members page
where an operator adds a member, changes a role or removes one (each audited, each needing its
own permission, the last owner kept), and read-only lists of memberships and invitations."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import Account, AuditEntry, Invitation, Membership, Role
from tests.factories import AccountFactory, MembershipFactory, StaffUserFactory, UserFactory
from tests.portal.admin_actions import changelist_url, messages_of

pytestmark = pytest.mark.django_db

MEMBER_PERMISSIONS = [
    "portal.view_account",
    "portal.add_membership",
    "portal.change_membership",
    "portal.delete_membership",
]


def members_url(account: Account) -> str:
    return reverse("admin:portal_account_members", args=[account.pk])


@pytest.fixture
def operator(client):
    user = StaffUserFactory(permissions=MEMBER_PERMISSIONS)
    client.force_login(user)
    client.operator = user
    return client


@pytest.fixture
def team(account):
    account.name = "Ada's shop"
    account.save()
    developer = MembershipFactory(
        account=account, role=Role.DEVELOPER, user=UserFactory(email="engineer@shop.test")
    )
    return account, developer


def test_the_account_page_lists_members_with_role_and_joined(admin_client, team):
    account, developer = team

    page = admin_client.get(reverse("admin:portal_account_change", args=[account.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert account.owner.email in html and "engineer@shop.test" in html
    assert f"{developer.created:%Y-%m-%d %H:%M}" in html
    assert f'href="{members_url(account)}"' in html


def test_the_list_counts_members_and_finds_an_organisation_by_any_member(admin_client, team):
    account, _ = team
    AccountFactory()
    # A second developer: matching both by the search must not double the row or its count.
    MembershipFactory(account=account, user=UserFactory(email="second.engineer@shop.test"))

    response = admin_client.get(changelist_url(), {"q": "engineer@shop"})

    rows = list(response.context["cl"].result_list)
    assert rows == [account]
    assert rows[0].members == 3
    found = admin_client.get(changelist_url(), {"q": "second.engineer@shop.test"}).context["cl"]
    assert list(found.result_list) == [account]


def test_an_operator_adds_an_existing_user_with_a_role_and_reason(operator, team):
    account, _ = team
    newcomer = UserFactory(email="Pay@Example.com")

    response = operator.post(
        members_url(account),
        {
            "operation": "add",
            "add-email": "pay@example.com",
            "add-role": Role.BILLING,
            "add-reason": "Ticket 42: their accountant",
        },
        follow=True,
    )

    assert response.status_code == 200
    assert "Added Pay@Example.com to Ada's shop as billing." in messages_of(response)
    assert account.memberships.get(user=newcomer).role == Role.BILLING
    entry = AuditEntry.objects.get(action="membership.add")
    assert (entry.actor, entry.account, entry.target) == (
        operator.operator,
        account,
        newcomer.email,
    )
    assert entry.after == {"member": newcomer.email, "role": "billing"}
    assert entry.reason == "Ticket 42: their accountant"


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("nobody@example.com", "No user has signed up with nobody@example.com."),
        ("engineer@shop.test", "engineer@shop.test is already a member of Ada&#x27;s shop."),
    ],
)
def test_adding_someone_unknown_or_already_there_is_refused_clearly(operator, team, email, error):
    account, _ = team

    response = operator.post(
        members_url(account),
        {"operation": "add", "add-email": email, "add-role": Role.ADMIN, "add-reason": "Asked"},
    )

    assert response.status_code == 400
    # The admin's message list capitalises the first letter (of the email, here).
    assert error.lower() in response.content.decode().lower()
    assert account.memberships.count() == 2
    assert not AuditEntry.objects.filter(action="membership.add").exists()


def test_an_operator_changes_a_role_with_an_audit_entry(operator, team):
    account, developer = team

    response = operator.post(
        members_url(account),
        {
            "operation": "role",
            "role-membership": developer.pk,
            "role-role": Role.ADMIN,
            "role-reason": "The owner asked by phone",
        },
        follow=True,
    )

    assert "engineer@shop.test is now admin of Ada's shop." in messages_of(response)
    developer.refresh_from_db()
    assert developer.role == Role.ADMIN
    entry = AuditEntry.objects.get(action="membership.role_change")
    assert (entry.actor, entry.before, entry.after) == (
        operator.operator,
        {"role": "developer"},
        {"role": "admin"},
    )


def test_an_operator_removes_a_member_with_an_audit_entry(operator, team):
    account, developer = team

    response = operator.post(
        members_url(account),
        {"operation": "remove", "remove-membership": developer.pk, "remove-reason": "Left them"},
        follow=True,
    )

    assert "Removed engineer@shop.test from Ada's shop." in messages_of(response)
    assert not Membership.objects.filter(pk=developer.pk).exists()
    entry = AuditEntry.objects.get(action="membership.remove")
    assert (entry.actor, entry.account, entry.reason) == (operator.operator, account, "Left them")
    assert entry.before == {"member": "engineer@shop.test", "role": "developer"}


@pytest.mark.parametrize(
    "change",
    [
        {"operation": "remove", "remove-reason": "Closing it"},
        {"operation": "role", "role-role": Role.DEVELOPER, "role-reason": "Demote"},
    ],
)
def test_the_last_owner_cannot_be_removed_or_demoted(operator, team, change):
    account, _ = team
    owner = account.memberships.get(role=Role.OWNER)
    prefix = change["operation"]

    response = operator.post(members_url(account), {**change, f"{prefix}-membership": owner.pk})

    assert response.status_code == 400
    message = "Ada&#x27;s shop must keep an owner: make someone else an owner first."
    assert message in response.content.decode()
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert not AuditEntry.objects.filter(action__startswith="membership.").exists()


def test_removing_the_primary_owner_moves_it_to_another_owner(operator, team):
    account, developer = team
    Membership.objects.filter(pk=developer.pk).update(role=Role.OWNER)
    primary = account.memberships.get(user=account.owner)

    operator.post(
        members_url(account),
        {"operation": "remove", "remove-membership": primary.pk, "remove-reason": "Sold"},
    )

    account.refresh_from_db()
    assert account.owner == developer.user


def test_a_member_of_another_organisation_cannot_be_touched_from_this_page(operator, team):
    account, _ = team
    elsewhere = MembershipFactory(role=Role.DEVELOPER)

    response = operator.post(
        members_url(account),
        {"operation": "remove", "remove-membership": elsewhere.pk, "remove-reason": "Oops"},
    )

    assert response.status_code == 400
    assert "That person is not a member of Ada&#x27;s shop." in response.content.decode()
    assert Membership.objects.filter(pk=elsewhere.pk).exists()


def test_each_change_needs_its_own_permission(client, team):
    account, developer = team
    client.force_login(StaffUserFactory(permissions=["portal.view_account"]))

    page = client.get(members_url(account))
    refused = client.post(
        members_url(account),
        {"operation": "remove", "remove-membership": developer.pk, "remove-reason": "No"},
    )

    assert page.status_code == 200
    assert "engineer@shop.test" in page.content.decode()
    assert 'value="remove"' not in page.content.decode()
    assert refused.status_code == 403
    assert Membership.objects.filter(pk=developer.pk).exists()


def test_an_operator_without_account_access_sees_no_members_page(client, team):
    account, _ = team
    client.force_login(StaffUserFactory(permissions=["portal.delete_membership"]))

    assert client.get(members_url(account)).status_code == 403


def test_an_unknown_operation_is_a_400(operator, team):
    account, _ = team

    assert operator.post(members_url(account), {"operation": "promote"}).status_code == 400


def test_memberships_and_invitations_are_listed_read_only_with_filters(admin_client, team):
    account, _ = team
    now = timezone.now()
    for email, fields in [
        ("open@example.com", {}),
        ("late@example.com", {"expires_at": now - timedelta(days=1)}),
        ("no@example.com", {"revoked_at": now}),
    ]:
        Invitation.objects.create(
            account=account,
            email=email,
            role=Role.DEVELOPER,
            token_hash=email.ljust(64, "0"),
            expires_at=fields.pop("expires_at", now + timedelta(days=7)),
            **fields,
        )

    members = admin_client.get(reverse("admin:portal_membership_changelist"), {"role": "owner"})
    open_ones = admin_client.get(reverse("admin:portal_invitation_changelist"), {"status": "open"})
    expired = admin_client.get(reverse("admin:portal_invitation_changelist"), {"status": "expired"})

    assert [m.user for m in members.context["cl"].result_list] == [account.owner]
    assert [i.email for i in open_ones.context["cl"].result_list] == ["open@example.com"]
    assert [i.email for i in expired.context["cl"].result_list] == ["late@example.com"]
    assert admin_client.get(reverse("admin:portal_membership_add")).status_code == 403
    invitation = Invitation.objects.get(email="open@example.com")
    change = admin_client.get(reverse("admin:portal_invitation_change", args=[invitation.pk]))
    assert change.status_code == 200
    assert invitation.token_hash not in change.content.decode()
    assert 'name="_save"' not in change.content.decode()
