"""The operator audit log: one insert-only row per operator action, written by the service.

Services call ``audit_record`` inside the transaction that makes the change, so an entry exists
exactly when the change does. ``before`` and ``after`` hold only the fields the action touched,
as plain JSON (ids, slugs, numbers, strings), so an entry still reads right after the tier or key
it names was renamed or deleted.
"""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from portal.models import Account, AuditEntry


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    account: Account | None = None,
    target: str = "",
    before: dict[str, Any],
    after: dict[str, Any],
    reason: str = "",
) -> AuditEntry:
    """Write one audit entry. ``actor`` None: the system acted (a command or job, not a person).

    ``target`` defaults to the account's owner email, which stays readable in the log even if
    the account is deleted later (the foreign key is then set to NULL).
    """
    if not target and account is not None:
        target = account.owner.email
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        account=account,
        action=action,
        target=target[: AuditEntry._meta.get_field("target").max_length],
        before=before,
        after=after,
        reason=reason,
    )
