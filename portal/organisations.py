"""Writes for an organisation's people: adding and removing members, changing roles, handing
over ownership. Every change is one audit entry, written in the transaction that makes it.

Who may ask is the caller's check (``organisation_for`` in portal.organisation_access, from the
table in portal.permissions); the rules here are the ones about the people involved, which hold
for a member, an operator in the admin and a command alike:

- only an owner makes, unmakes or removes an owner (``actor_membership`` None: an operator or
  the system, who may);
- an organisation always keeps at least one owner;
- the primary owner (``Account.owner``, the contact Stripe and operators know) is always an
  owner: removing or demoting them moves it to the longest-standing other owner.

The organisation's row is locked for each change, so two admins removing the last two owners
at once cannot both succeed.

Invitations (``invitation_create``, ``invitation_accept``) bring people in: an email with a
one-time link, valid for 7 days, for the address it was sent to.
"""

import secrets
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal import tasks
from portal.audit import audit_record
from portal.models import Account, Invitation, Membership, Role
from portal.selectors import invitation_for_token
from portal.services import account_create
from portal.signals import account_owner_changed_send

# How long an invitation's link works.
INVITATION_VALID_FOR = timedelta(days=7)


class MembershipError(Exception):
    """A change to an organisation's members that cannot be made; the message is written for
    the person who asked."""


class OwnerOnly(MembershipError):
    """The change touches an owner (or ownership) and the member asking is not an owner: their
    role does not allow it, so the pages answer 403."""


class InvitationUnknown(MembershipError):
    """No invitation has this token: a mistyped or made-up link."""


class InvitationClosed(MembershipError):
    """The invitation was accepted, revoked or has expired: it no longer works."""


class InvitationForAnotherAddress(MembershipError):
    """The signed-in user has no verified address the invitation was sent to."""


def _locked(account: Account) -> Account:
    return Account.objects.select_for_update().get(pk=account.pk)


def _owners(account: Account) -> list[Membership]:
    return list(
        account.memberships.filter(role=Role.OWNER).select_related("user").order_by("created", "pk")
    )


def _owner_guard(actor_membership: Membership | None, *roles: str) -> None:
    """Refuse a member who is not an owner touching the owner role (``roles``: the roles
    before and after the change)."""
    if actor_membership is None or actor_membership.role == Role.OWNER:
        return
    if Role.OWNER in roles:
        raise OwnerOnly("Only an owner can make, change or remove an owner.")


def member_manageable(actor_membership: Membership, membership: Membership) -> bool:
    """Whether the members page offers ``actor_membership`` to re-role or remove
    ``membership`` (what ``_owner_guard`` would let through; their role must also allow the
    action)."""
    return actor_membership.pk != membership.pk and (
        actor_membership.role == Role.OWNER or membership.role != Role.OWNER
    )


def roles_assignable(actor_membership: Membership) -> list[Role]:
    """The roles ``actor_membership`` may give, by invitation or a role change."""
    if actor_membership.role == Role.OWNER:
        return list(Role)
    return [role for role in Role if role != Role.OWNER]


def _primary_owner_keep(account: Account, *, leaving: User) -> None:
    """``leaving`` stops being an owner: if they were the primary owner, the longest-standing
    other owner becomes it."""
    if account.owner_id != leaving.pk:
        return
    successor = next((m for m in _owners(account) if m.user_id != leaving.pk), None)
    if successor is None:
        raise MembershipError(f"{account} must keep an owner: make someone else an owner first.")
    account.owner = successor.user
    account.save(update_fields=["owner"])
    account_owner_changed_send(account.pk)


@transaction.atomic
def membership_add(
    *,
    account: Account,
    user: User,
    role: Role,
    actor: User | None,
    actor_membership: Membership | None = None,
    reason: str = "",
) -> Membership:
    """Make ``user`` a member of ``account`` with ``role`` (an accepted invitation, or an
    operator in the admin)."""
    account = _locked(account)
    _owner_guard(actor_membership, role)
    if account.memberships.filter(user=user).exists():
        raise MembershipError(f"{user.email} is already a member of {account}.")
    membership = Membership.objects.create(account=account, user=user, role=role)
    audit_record(
        actor=actor,
        action="membership.add",
        account=account,
        target=user.email,
        before={},
        after={"member": user.email, "role": str(role)},
        reason=reason,
    )
    return membership


@transaction.atomic
def membership_role_change(
    *,
    membership: Membership,
    role: Role,
    actor: User | None,
    actor_membership: Membership | None = None,
    reason: str = "",
) -> Membership:
    account = _locked(membership.account)
    membership = Membership.objects.select_related("user").get(pk=membership.pk)
    before = membership.role
    if before == role:
        return membership
    _owner_guard(actor_membership, before, role)
    if before == Role.OWNER:
        _primary_owner_keep(account, leaving=membership.user)
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="membership.role_change",
        account=account,
        target=membership.user.email,
        before={"role": before},
        after={"role": str(role)},
        reason=reason,
    )
    return membership


@transaction.atomic
def membership_remove(
    *,
    membership: Membership,
    actor: User | None,
    actor_membership: Membership | None = None,
    reason: str = "",
) -> None:
    """End ``membership``: the member loses access from their next request. The keys they made
    stay the organisation's and keep working (an admin revokes them if they should not)."""
    account = _locked(membership.account)
    membership = Membership.objects.select_related("user").get(pk=membership.pk)
    leaving_self = actor_membership is not None and actor_membership.pk == membership.pk
    if not leaving_self:
        _owner_guard(actor_membership, membership.role)
    if membership.role == Role.OWNER:
        _primary_owner_keep(account, leaving=membership.user)
    kept_keys = list(
        account.api_keys.usable()
        .filter(created_by=membership.user)
        .values_list("prefix", flat=True)
    )
    membership.delete()
    audit_record(
        actor=actor,
        action="membership.leave" if leaving_self else "membership.remove",
        account=account,
        target=membership.user.email,
        before={"member": membership.user.email, "role": membership.role},
        after={"member": None, "keys_still_working": kept_keys},
        reason=reason,
    )


@transaction.atomic
def ownership_transfer(
    *,
    account: Account,
    to: Membership,
    actor: User | None,
    actor_membership: Membership | None = None,
) -> Account:
    """Make ``to`` the primary owner (an owner if they were not). The owner handing over stays
    a member, as an admin, so they can still help; they can leave afterwards."""
    account = _locked(account)
    to = Membership.objects.select_related("user").get(pk=to.pk)
    if to.account_id != account.pk:
        raise MembershipError("Ownership can only go to a member of this organisation.")
    if actor_membership is not None and actor_membership.role != Role.OWNER:
        raise OwnerOnly("Only an owner can hand over ownership.")
    previous = account.owner
    if previous.pk == to.user_id:
        raise MembershipError(f"{to.user.email} already owns {account}.")
    role_before = to.role
    to.role = Role.OWNER
    to.save(update_fields=["role"])
    account.owner = to.user
    account.save(update_fields=["owner"])
    account_owner_changed_send(account.pk)
    if actor_membership is not None and actor_membership.user_id == previous.pk:
        Membership.objects.filter(pk=actor_membership.pk).update(role=Role.ADMIN)
    audit_record(
        actor=actor,
        action="organisation.transfer",
        account=account,
        target=to.user.email,
        before={"owner": previous.email, "new_owner_role": role_before},
        after={"owner": to.user.email},
    )
    return account


def invitation_addressed_to(invitation: Invitation, user: User) -> bool:
    """Whether the invitation's address is one of ``user``'s verified ones (any of them, not
    only the primary: a member may sign in with a personal address and add the work one)."""
    return EmailAddress.objects.filter(
        user=user, email__iexact=invitation.email, verified=True
    ).exists()


def _member_with_address(account: Account, email: str) -> Membership | None:
    return (
        account.memberships.filter(
            Q(user__email__iexact=email)
            | Q(user__emailaddress__email__iexact=email, user__emailaddress__verified=True)
        )
        .select_related("user")
        .first()
    )


@transaction.atomic
def invitation_create(
    *,
    account: Account,
    email: str,
    role: Role,
    actor: User | None,
    actor_membership: Membership | None,
) -> tuple[Invitation, str]:
    """Invite ``email`` to ``account`` with ``role``; returns the invitation and its token,
    which only the emailed link carries (the database keeps its hash). Inviting an address
    again replaces its open invitation, so one link works per address."""
    account = _locked(account)
    email = email.strip()
    _owner_guard(actor_membership, role)
    if _member_with_address(account, email) is not None:
        raise MembershipError(f"{email} is already a member of {account}.")
    now = timezone.now()
    replaced = list(
        account.invitations.filter(
            email__iexact=email, accepted_at=None, revoked_at=None, expires_at__gt=now
        ).values_list("pk", flat=True)
    )
    Invitation.objects.filter(pk__in=replaced).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        account=account,
        email=email,
        role=role,
        token_hash=Invitation.hash_token(token),
        invited_by=actor,
        created=now,
        expires_at=now + INVITATION_VALID_FOR,
    )
    audit_record(
        actor=actor,
        action="invitation.create",
        account=account,
        target=email,
        before={"replaced_invitations": replaced} if replaced else {},
        after={"email": email, "role": str(role), "expires_at": invitation.expires_at.isoformat()},
    )
    # The token goes to the task as it is: it exists nowhere else to be read back, and the
    # broker holds it only until the email is sent, as the mail server then does.
    invitation_id = invitation.pk
    transaction.on_commit(
        lambda: tasks.invitation_email_send.delay(invitation_id=invitation_id, token=token)
    )
    return invitation, token


@transaction.atomic
def invitation_revoke(
    *,
    invitation: Invitation,
    actor: User | None,
    actor_membership: Membership | None,
) -> Invitation:
    """Stop ``invitation``'s link from working. Revoking twice, or one that expired, is a
    no-op; an accepted one cannot be revoked (remove the member instead)."""
    _locked(invitation.account)
    invitation = Invitation.objects.select_related("account").get(pk=invitation.pk)
    _owner_guard(actor_membership, Role(invitation.role))
    if invitation.accepted_at is not None:
        raise MembershipError(
            f"{invitation.email} already accepted this invitation: remove them from the "
            "members instead."
        )
    if not invitation.is_open():
        return invitation
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="invitation.revoke",
        account=invitation.account,
        target=invitation.email,
        before={"status": "open"},
        after={"status": "revoked"},
    )
    return invitation


def invitation_closed_reason(invitation: Invitation) -> str:
    """Why ``invitation`` no longer works, in words for the person holding its link."""
    status = invitation.status
    if status == "accepted":
        return "This invitation was already accepted: an invitation link works once."
    if status == "revoked":
        return f"This invitation was withdrawn by {invitation.account}."
    return (
        f"This invitation expired on {timezone.localtime(invitation.expires_at):%Y-%m-%d %H:%M}."
        f" Ask someone at {invitation.account} to invite you again."
    )


def invitation_check(*, invitation: Invitation, user: User) -> None:
    """Raise what accepting ``invitation`` as ``user`` would be refused with, so its page can
    say so before they try."""
    if not invitation.is_open():
        raise InvitationClosed(invitation_closed_reason(invitation))
    if invitation.account.memberships.filter(user=user).exists():
        raise MembershipError(f"You are already a member of {invitation.account}.")
    if not invitation_addressed_to(invitation, user):
        raise InvitationForAnotherAddress(
            f"This invitation was sent to {invitation.email}, and you are signed in as "
            f"{user.email}. Log out and sign in with {invitation.email}, or add and verify it "
            "under Account → Email addresses, then open the link again."
        )


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """``user`` joins the organisation ``token``'s invitation is for, with its role. Works
    once, while the invitation is open, and only for a user with a verified address the
    invitation was sent to."""
    found = invitation_for_token(token)
    if found is None:
        raise InvitationUnknown("This invitation link is not valid: check it was copied whole.")
    _locked(found.account)
    # Read again under the organisation's lock: two tabs accepting at once add one member.
    invitation = Invitation.objects.select_related("account", "invited_by").get(pk=found.pk)
    invitation_check(invitation=invitation, user=user)
    inviter = invitation.invited_by.email if invitation.invited_by else "an operator"
    membership = membership_add(
        account=invitation.account,
        user=user,
        role=Role(invitation.role),
        actor=user,
        # The inviter's role was checked when the invitation was made.
        actor_membership=None,
        reason=f"Accepted invitation {invitation.pk} from {inviter}.",
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


@transaction.atomic
def organisation_create(*, owner: User, name: str) -> Account:
    """A new organisation ``owner`` owns (beside the ones they belong to), on the default
    tier."""
    name = name.strip()
    if not name:
        raise MembershipError("Give the organisation a name.")
    account = account_create(owner=owner, name=name)
    audit_record(
        actor=owner,
        action="organisation.create",
        account=account,
        before={},
        after={"name": name, "owner": owner.email},
    )
    return account


@transaction.atomic
def membership_alerts_set(*, membership: Membership, receives: bool) -> Membership:
    """A member's own choice of usage and budget alert emails (``Membership.alerted``)."""
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "account")
        .get(pk=membership.pk)
    )
    before = membership.alerted
    membership.receives_alerts = receives
    membership.save(update_fields=["receives_alerts"])
    audit_record(
        actor=membership.user,
        action="membership.alerts",
        account=membership.account,
        target=membership.user.email,
        before={"receives_alerts": before},
        after={"receives_alerts": receives},
    )
    return membership
