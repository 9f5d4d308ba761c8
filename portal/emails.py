"""Emails of the portal's own (allauth sends the sign-up and password ones), each as text and
HTML from templates/portal/email/."""

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from portal.models import Invitation


def _deletion_email(template: str, context: dict, recipients: list[str]) -> None:
    context = {"site_url": settings.SITE_URL, **context}
    subject = render_to_string(f"{template}_subject.txt", context).strip()
    send_mail(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
        message=render_to_string(f"{template}.txt", context),
        from_email=None,
        recipient_list=recipients,
        html_message=render_to_string(f"{template}.html", context),
    )


def account_deleted_email(*, email: str, organisations: list[str] | None = None) -> None:
    """Tell the address a deleted login had that it is gone, which organisations went with it
    (the ones it was the only member of), and what was kept."""
    context = {"email": email, "organisations": organisations or []}
    _deletion_email("portal/email/account_deleted", context, [email])


def organisation_deleted_email(*, emails: list[str], organisation: str) -> None:
    """Tell a deleted organisation's owners and billing members that it is gone, and what was
    kept: one message to them all."""
    context = {"organisation": organisation}
    _deletion_email("portal/email/organisation_deleted", context, emails)


def invitation_email(*, invitation_id: int, token: str) -> None:
    """Invite an address to an organisation: who invites, to which role, the link (with the
    token, which nothing else holds) and until when it works."""
    invitation = (
        Invitation.objects.select_related("account__owner", "invited_by")
        .filter(pk=invitation_id)
        .first()
    )
    if invitation is None or not invitation.is_open():
        return
    context = {
        "site_url": settings.SITE_URL,
        "site_name": settings.SITE_NAME,
        "organisation": str(invitation.account),
        "role": invitation.get_role_display(),
        "inviter": invitation.invited_by.email if invitation.invited_by else None,
        "link": settings.SITE_URL + reverse("portal:invitation-accept", args=[token]),
        "expires_at": invitation.expires_at,
    }
    template = "portal/email/invitation"
    subject = render_to_string(f"{template}_subject.txt", context).strip()
    send_mail(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
        message=render_to_string(f"{template}.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
        html_message=render_to_string(f"{template}.html", context),
    )
