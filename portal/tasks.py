"""Celery tasks of the portal app: thin wrappers around services."""

from celery import shared_task

from portal.emails import account_deleted_email, invitation_email, organisation_deleted_email
from portal.services import api_key_flush_last_used


@shared_task
def flush_api_key_last_used() -> int:
    """Write this process's buffered last-used times. Under beat in the embedded mode this is
    the web process's buffer (tasks run eagerly there); production web processes flush their
    own from a timer (portal/keys/last_used.py), so on a worker it finds nothing and is a no-op."""
    return api_key_flush_last_used()


@shared_task
def account_deleted_email_send(*, email: str, organisations: list[str] | None = None) -> None:
    """The confirmation of a deleted login (and the organisations only it belonged to). Takes
    the address, not an id: the login no longer holds it."""
    account_deleted_email(email=email, organisations=organisations)


@shared_task
def organisation_deleted_email_send(*, emails: list[str], organisation: str) -> None:
    """The confirmation of a deleted organisation. Takes the addresses and name, not an id:
    the organisation no longer holds its members or its name."""
    organisation_deleted_email(emails=emails, organisation=organisation)


@shared_task
def invitation_email_send(*, invitation_id: int, token: str) -> None:
    """An invitation's email with its link. An invitation revoked or replaced before the task
    ran sends nothing: its link would not work."""
    invitation_email(invitation_id=invitation_id, token=token)
