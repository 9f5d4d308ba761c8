"""A developer deletes their own account.

What goes, what stays, and why:

- **Keys**: every key that still works is revoked, so the API refuses them from the next
  request (``api_key_revoke`` tells every process's key cache).
- **Subscription**: cancelled at once through billing's ``subscription_cancel_now``, the service
  the operators' "Cancel now" uses: billing ends at the next whole minute, the every-minute job
  reports the usage before it and then cancels with a final invoice (``invoice_now``), so no
  usage is lost and nothing after it is billed (docs/stripe.md, "Cancel now").
- **Personal data** is removed: the email addresses, the password, the second factors, the
  account's name; the login becomes ``deleted-<id>@deleted.invalid`` (RFC 2606: ``.invalid``
  never resolves, so no mail can reach it) and is deactivated, which ends every session (the
  session's password hash no longer matches, and Django refuses inactive users).
- **Money records stay** for the operator, who must keep them: the account row (suspended,
  ``DELETED_REASON`` as its reason), its usage rows, meter reports and invoices, and the audit
  log. The account row is also what the pending cancellation and the rollup still need.
- An **audit entry** records the deletion, named by account id, not by the email it removes.
- The **confirmation email** goes to the address the account had, once the deletion commits.

Portal's web side, not its core (``portal.services``): it reaches billing's services, which
themselves use portal's core.
"""

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
from portal.models import Account
from portal.services import AccountActionError, api_key_revoke
from portal.signals import account_changed_send

# The suspension reason a deleted account carries (the admin shows it; the API would say it to
# a key, but every key is revoked first).
DELETED_REASON = "Deleted by its owner"


class AccountDeletionError(Exception):
    """The account cannot be deleted right now; the message is written for the developer."""


@dataclass(frozen=True, slots=True)
class AccountDeleted:
    # The address the account had, where the confirmation goes.
    email: str
    revoked_keys: list[str]
    # When billing ends (the next whole minute); None: there was no subscription to cancel.
    billing_ends_at: datetime | None


def deleted_login(user_id: int) -> str:
    return f"deleted-{user_id}@deleted.invalid"


@transaction.atomic
def account_delete(*, account: Account, now: datetime | None = None) -> AccountDeleted:
    """Delete ``account`` at its owner's request (the caller checked the password)."""
    now = now or timezone.now()
    account = Account.objects.select_for_update().select_related("owner").get(pk=account.pk)
    owner = account.owner
    email = owner.email
    status_before = account.status
    if account.status == Account.Status.SUSPENDED and account.suspended_reason == DELETED_REASON:
        raise AccountDeletionError("This account is already deleted.")
    # Personal data first, inside this transaction: the cancellation's own audit entry then
    # names the account by its anonymised login, and a refusal below undoes it all.
    _personal_data_remove(owner)
    try:
        cancelled = subscription_cancel_now(
            account=account, actor=owner, reason=DELETED_REASON, now=now
        )
    except AccountActionError:
        # A change of plan is already scheduled for the next minute or two: cancelling now
        # would race it, so the developer is asked to come back once it has gone through.
        raise AccountDeletionError(
            "A change of plan is on its way to Stripe; try again in a few minutes."
        ) from None

    keys = list(account.api_keys.usable(now).order_by("created"))
    for key in keys:
        api_key_revoke(key=key)

    account.name = ""
    account.status = Account.Status.SUSPENDED
    account.suspended_reason = DELETED_REASON
    # Courtesy alerts off; the address they would go to is gone anyway.
    account.alerts_opt_out = True
    account.save(update_fields=["name", "status", "suspended_reason", "alerts_opt_out"])
    account_changed_send(account.pk)

    billing_ends_at = None if cancelled is None else cancelled.after.get("billing_ends_at")
    audit_record(
        actor=owner,
        action="account.delete",
        account=account,
        target=f"account {account.pk}",
        before={"status": status_before, "usable_keys": [key.prefix for key in keys]},
        after={
            "status": "deleted",
            "usable_keys": [],
            "subscription_cancelled": cancelled is not None,
        },
        reason=DELETED_REASON,
    )
    transaction.on_commit(lambda: tasks.account_deleted_email_send.delay(email=email))
    return AccountDeleted(
        email=email,
        revoked_keys=[key.prefix for key in keys],
        billing_ends_at=None
        if billing_ends_at is None
        else datetime.fromisoformat(billing_ends_at),
    )


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
