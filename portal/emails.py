"""Emails of the portal's own (allauth sends the sign-up and password ones), each as text and
HTML from templates/portal/email/."""

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string


def account_deleted_email(*, email: str) -> None:
    """Tell the address a deleted account had that it is gone, and what was kept."""
    context = {"site_url": settings.SITE_URL, "email": email}
    template = "portal/email/account_deleted"
    subject = render_to_string(f"{template}_subject.txt", context).strip()
    send_mail(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
        message=render_to_string(f"{template}.txt", context),
        from_email=None,
        recipient_list=[email],
        html_message=render_to_string(f"{template}.html", context),
    )
