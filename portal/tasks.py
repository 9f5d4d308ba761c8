"""Celery tasks of the portal app: thin wrappers around services."""

from celery import shared_task

from portal.emails import account_deleted_email
from portal.services import api_key_flush_last_used


@shared_task
def flush_api_key_last_used() -> int:
    """Write this process's buffered last-used times. Under beat in the embedded mode this is
    the web process's buffer (tasks run eagerly there); production web processes flush their
    own from a timer (portal/keys/last_used.py), so on a worker it finds nothing and is a no-op."""
    return api_key_flush_last_used()


@shared_task
def account_deleted_email_send(*, email: str) -> None:
    """The confirmation of a deleted account. Takes the address, not an id: the account no
    longer holds it."""
    account_deleted_email(email=email)
