"""The operator audit log: one insert-only row per operator action, written by the service.

Insert-only is enforced three times: the admin offers no change or delete, the model and its
QuerySet refuse them, and the database refuses them (migration 0004's triggers), whatever SQL
asks. The one change allowed is the SET NULL of a deleted account's or operator's link.

Services call ``audit_record`` inside the transaction that makes the change, so an entry exists
exactly when the change does. ``before`` and ``after`` hold only the fields the action touched,
as plain JSON (ids, slugs, numbers, strings), so an entry still reads right after the tier or key
it names was renamed or deleted.
"""

from collections.abc import Iterable
from datetime import date
from typing import Any

from django.contrib.auth.models import User
from django.db import models

from portal.models import Account, AuditEntry


def audit_value(value: Any) -> Any:
    """One value as an entry's JSON keeps it: a date or time in ISO 8601, a related row by its
    slug when it has one (a tier) or else its id; strings, numbers, booleans and None as they
    are."""
    if isinstance(value, date):  # datetimes included
        return value.isoformat()
    if isinstance(value, models.Model):
        return getattr(value, "slug", value.pk)
    return value


def audit_snapshot(obj: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    """``fields`` of ``obj`` as an entry's ``before`` or ``after`` holds them. Take the ``before``
    snapshot ahead of the change and the ``after`` one once the new values are set."""
    return {name: audit_value(getattr(obj, name)) for name in fields}


def audit_record(
    *,
    actor: User | None,
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
        actor=actor,
        account=account,
        action=action,
        target=target[: AuditEntry._meta.get_field("target").max_length],
        before=before,
        after=after,
        reason=reason,
    )
