"""Two deletions a member can ask for on the account settings page: an organisation (its owner),
and their own login (anyone).

**Deleting an organisation** (``organisation_delete``) ends it for everyone, keeping what the
operator must keep:

- **Keys**: every key that still works is revoked, so the API refuses them from the next
  request (``api_key_revoke`` tells every process's key cache).
- **Subscription**: cancelled at once through billing's ``subscription_cancel_now``, the service
  the operators' "Cancel now" uses: billing ends at the next whole minute, the every-minute job
  reports the usage before it and then cancels with a final invoice (``invoice_now``), so no
  usage is lost and nothing after it is billed (docs/stripe.md, "Cancel now").
- **Members**: every membership is removed (each member loses access from their next request)
  and the invitations still open stop working. Each member's login stays: it is theirs, and may
  belong to other organisations.
- **Money records stay** for the operator, who must keep them: the organisation's row
  (suspended, ``DELETED_REASON`` as its reason, its name removed), its usage rows, meter reports
  and invoices, and the audit log. The row is also what the pending cancellation and the rollup
  still need.
- An **audit entry** (``account.delete``) records it, naming the organisation by id and the
  members by user id, not by the addresses a later login deletion removes.
- The **confirmation email** goes to its owners and billing members, once it commits.

**Deleting one's login** (``login_delete``) removes the personal data: the email addresses, the
password, the second factors; the login becomes ``deleted-<id>@deleted.invalid`` (RFC 2606:
``.invalid`` never resolves, so no mail can reach it) and is deactivated, which ends every
session (the session's password hash no longer matches, and Django refuses inactive users). An
organisation whose only member they are is deleted with it, as above; they leave the others. It
is refused while they are the only owner of an organisation that has other members: an
organisation always keeps an owner, so they hand it over first. The confirmation goes to the
address the login had.

Portal's web side, not its core (``portal.services``): it reaches billing's services, which
themselves use portal's core.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from billing.services.switch import subscription_cancel_now
from portal import tasks
from portal.audit import audit_record
from portal.models import Account, Membership, Role
from portal.organisations import membership_remove
from portal.services import AccountActionError, api_key_revoke
from portal.signals import account_changed_send

# The suspension reason a deleted organisation carries (the admin shows it; the API would say
# it to a key, but every key is revoked first).
DELETED_REASON = "Deleted by its owner"
# The roles told that an organisation was deleted: the ones who answer for it and pay for it.
TOLD_OF_DELETION = (Role.OWNER, Role.BILLING)


class AccountDeletionError(Exception):
    """The organisation or login cannot be deleted right now; the message is written for the
    member."""


@dataclass(frozen=True, slots=True)
class OrganisationDeleted:
    # What it was called (its name, else its primary owner's address), for the messages.
    name: str
    revoked_keys: list[str]
    # When billing ends (the next whole minute); None: there was no subscription to cancel.
    billing_ends_at: datetime | None
    # The addresses the confirmation goes to; empty when a login deletion tells instead.
    told: list[str]


@dataclass(frozen=True, slots=True)
class LoginDeleted:
    # The address the login had, where the confirmation goes.
    email: str
    # The organisations deleted with it (they were their only member), by name.
    organisations_deleted: list[str]
    # The organisations they left, which go on without them.
    organisations_left: list[str]


def deleted_login(user_id: int) -> str:
    return f"deleted-{user_id}@deleted.invalid"


def is_deleted(account: Account) -> bool:
    return account.status == Account.Status.SUSPENDED and account.suspended_reason == DELETED_REASON


@transaction.atomic
def organisation_delete(
    *, account: Account, actor: User, now: datetime | None = None, notify: bool = True
) -> OrganisationDeleted:
    """Delete organisation ``account`` at its owner's request (the caller checked their role
    and password). ``notify`` False: no confirmation of its own (a login deletion that takes
    the organisation with it tells its one member)."""
    now = now or timezone.now()
    account = Account.objects.select_for_update().select_related("owner").get(pk=account.pk)
    if is_deleted(account):
        raise AccountDeletionError(f"{account} is already deleted.")
    name = str(account)
    members = list(account.memberships.select_related("user").order_by("created", "pk"))
    told = _addresses(m.user for m in members if m.role in TOLD_OF_DELETION) if notify else []
    try:
        cancelled = subscription_cancel_now(
            account=account, actor=actor, reason=DELETED_REASON, now=now
        )
    except AccountActionError:
        # A change of plan is already scheduled for the next minute or two: cancelling now
        # would race it, so the owner is asked to come back once it has gone through.
        raise AccountDeletionError(
            "A change of plan is on its way to Stripe; try again in a few minutes."
        ) from None

    keys = list(account.api_keys.usable(now).order_by("created"))
    for key in keys:
        api_key_revoke(key=key)
    Membership.objects.filter(account=account).delete()
    account.invitations.filter(accepted_at=None, revoked_at=None).update(revoked_at=now)

    status_before = account.status
    account.name = ""
    account.status = Account.Status.SUSPENDED
    account.suspended_reason = DELETED_REASON
    # Courtesy alerts off; there is no one left to send them to.
    account.alerts_opt_out = True
    account.save(update_fields=["name", "status", "suspended_reason", "alerts_opt_out"])
    account_changed_send(account.pk)

    billing_ends_at = None if cancelled is None else cancelled.after.get("billing_ends_at")
    audit_record(
        actor=actor,
        action="account.delete",
        account=account,
        target=f"account {account.pk}",
        before={
            "status": status_before,
            "usable_keys": [key.prefix for key in keys],
            "members": [{"user": m.user_id, "role": m.role} for m in members],
        },
        after={
            "status": "deleted",
            "usable_keys": [],
            "members": [],
            "subscription_cancelled": cancelled is not None,
        },
        reason=DELETED_REASON,
    )
    if told:
        transaction.on_commit(
            lambda: tasks.organisation_deleted_email_send.delay(emails=told, organisation=name)
        )
    return OrganisationDeleted(
        name=name,
        revoked_keys=[key.prefix for key in keys],
        billing_ends_at=None
        if billing_ends_at is None
        else datetime.fromisoformat(billing_ends_at),
        told=told,
    )


def login_deletion_blockers(user: User) -> list[Account]:
    """The organisations ``user`` must hand over before deleting their login: those they are
    the only owner of while others are members too."""
    blocking = []
    for membership in Membership.objects.filter(user=user, role=Role.OWNER).select_related(
        "account__owner"
    ):
        others = membership.account.memberships.exclude(user=user)
        if others.exists() and not others.filter(role=Role.OWNER).exists():
            blocking.append(membership.account)
    return blocking


def login_deletion_refusal(blockers: list[Account]) -> str:
    """Why the login cannot be deleted yet, naming the organisations to hand over."""
    names = ", ".join(str(account) for account in blockers)
    has = "has" if len(blockers) == 1 else "have"
    return (
        f"You are the only owner of {names}, which {has} other members: make one of them an "
        "owner on the organisation's Members page (or delete the organisation) first."
    )


def organisations_deleted_with_login(user: User) -> list[Account]:
    """The organisations a deletion of ``user``'s login deletes with it: those they are the
    only member of."""
    return [
        membership.account
        for membership in Membership.objects.filter(user=user).select_related("account__owner")
        if not membership.account.memberships.exclude(user=user).exists()
    ]


@transaction.atomic
def login_delete(*, user: User, now: datetime | None = None) -> LoginDeleted:
    """Delete ``user``'s login at their request (the caller checked the password): personal
    data gone, the organisations only they belong to deleted, the others left."""
    now = now or timezone.now()
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.is_active and user.email == deleted_login(user.pk):
        raise AccountDeletionError("This login is already deleted.")
    email = user.email
    memberships = list(
        Membership.objects.filter(user=user)
        .select_related("account__owner")
        .order_by("created", "pk")
    )
    # Locked before they are weighed: a member joining meanwhile would otherwise lose their
    # organisation, or one leaving would leave it without an owner.
    list(Account.objects.select_for_update().filter(pk__in=[m.account_id for m in memberships]))
    blockers = login_deletion_blockers(user)
    if blockers:
        raise AccountDeletionError(login_deletion_refusal(blockers))
    alone = {account.pk for account in organisations_deleted_with_login(user)}
    # Named now: an organisation without a name goes by its primary owner's address, which may
    # be the one about to go.
    names = {m.account_id: str(m.account) for m in memberships}

    # Personal data first, inside this transaction: the audit entries written below (the
    # subscription's cancellation, the leaving) then name the login by its anonymised address,
    # and a refusal below undoes it all.
    _personal_data_remove(user)
    deleted, left = [], []
    for membership in memberships:
        if membership.account_id in alone:
            organisation_delete(account=membership.account, actor=user, now=now, notify=False)
            deleted.append(names[membership.account_id])
        else:
            membership_remove(
                membership=membership,
                actor=user,
                actor_membership=membership,
                reason="The member deleted their login.",
            )
            left.append(names[membership.account_id])
    audit_record(
        actor=user,
        action="login.delete",
        target=f"user {user.pk}",
        before={
            "organisations_deleted": [m.account_id for m in memberships if m.account_id in alone],
            "organisations_left": [m.account_id for m in memberships if m.account_id not in alone],
        },
        after={"login": "deleted"},
    )
    transaction.on_commit(
        lambda: tasks.account_deleted_email_send.delay(email=email, organisations=deleted)
    )
    return LoginDeleted(email=email, organisations_deleted=deleted, organisations_left=left)


def _addresses(users: Iterable[User]) -> list[str]:
    """Each active user's address once, in order."""
    found: dict[str, str] = {}
    for user in users:
        if user.is_active and user.email:
            found.setdefault(user.email.lower(), user.email)
    return list(found.values())


def _personal_data_remove(user: User) -> None:
    EmailAddress.objects.filter(user=user).delete()
    Authenticator.objects.filter(user=user).delete()
    login = deleted_login(user.pk)
    user.username = login
    user.email = login
    user.first_name = ""
    user.last_name = ""
    user.is_active = False
    user.set_unusable_password()
    user.save(
        update_fields=["username", "email", "first_name", "last_name", "is_active", "password"]
    )
