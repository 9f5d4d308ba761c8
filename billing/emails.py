"""Billing emails to an account's owner, each as text and HTML from templates/billing/email/."""

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from billing.selectors import tier_default
from portal.models import Account


def _send(account: Account, template: str) -> None:
    context = {
        "account": account,
        "paid_tier": account.subscribed_tier or account.tier,
        "default_tier": tier_default(),
        "grace_days": settings.BILLING_GRACE_DAYS,
        "billing_url": f"{settings.SITE_URL}{reverse('billing:overview')}",
    }
    subject = render_to_string(f"billing/email/{template}_subject.txt", context).strip()
    send_mail(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
        message=render_to_string(f"billing/email/{template}.txt", context),
        from_email=None,
        recipient_list=[account.email],
        html_message=render_to_string(f"billing/email/{template}.html", context),
    )


def payment_failed_email(account: Account) -> None:
    """A payment failed: the tier is kept until ``grace_until``; how to fix it."""
    _send(account, "payment_failed")


def grace_expired_email(account: Account) -> None:
    """The grace period ended: the account is on the default tier until the invoice is paid."""
    _send(account, "grace_expired")
