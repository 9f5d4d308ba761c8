"""Billing emails to an organisation's owners and billing members (and whoever else opted in:
``portal.selectors.account_alert_recipients``), each as text and HTML from templates/billing/email/,
and the tasks that send them (billing.services queues them once its change is committed)."""

from typing import TYPE_CHECKING

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from billing.models import BudgetAlert
from billing.selectors import tier_default
from portal.models import Account
from portal.selectors import account_alert_recipients

if TYPE_CHECKING:
    from billing.projection import InvoiceProjection


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
        recipient_list=account_alert_recipients(account),
        html_message=render_to_string(f"billing/email/{template}.html", context),
    )


def payment_failed_email(account: Account) -> None:
    """A payment failed: the tier is kept until ``grace_until``; how to fix it."""
    _send(account, "payment_failed")


def grace_expired_email(account: Account) -> None:
    """The grace period ended: the account is on the default tier until the invoice is paid."""
    _send(account, "grace_expired")


def _account_payment_due(account_id: int) -> Account | None:
    """The account while a payment is due (``grace_until`` is set until it is paid). None: it
    was paid meanwhile, or the account is gone."""
    account = (
        Account.objects.select_related("owner", "tier", "subscribed_tier")
        .filter(pk=account_id)
        .first()
    )
    # The email is about a state, so it is only sent while the state holds.
    return account if account is not None and account.grace_until is not None else None


@shared_task
def payment_failed_email_send(account_id: int) -> None:
    account = _account_payment_due(account_id)
    if account is not None:
        payment_failed_email(account)


@shared_task
def grace_expired_email_send(account_id: int) -> None:
    account = _account_payment_due(account_id)
    if account is not None:
        grace_expired_email(account)


def budget_alert_email(
    alert: BudgetAlert, projection: "InvoiceProjection | None"
) -> EmailMultiAlternatives:
    """A budget amount was reached: what usage has cost so far, against the budget, where the
    period is heading, and that nothing is refused below the spend cap. ``projection`` is the
    period's money now; None, or another period's (a retry after the period ended): the email
    states only the figures of the alert itself."""
    account = alert.account
    tier = account.subscribed_tier or account.tier
    current = projection if projection and projection.period_start == alert.period_start else None
    context = {
        "account": account,
        "tier": tier,
        "currency": tier.currency,
        "alert": alert,
        "percent_of_budget": alert.threshold_cents * 100 // alert.budget_cents,
        "projection": current,
        "spend_cap_cents": tier.spend_cap_cents if tier.overage_cap_units() is not None else None,
        "billing_url": f"{settings.SITE_URL}{reverse('billing:overview')}",
    }
    subject = render_to_string("billing/email/budget_alert_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
        body=render_to_string("billing/email/budget_alert.txt", context),
        to=account_alert_recipients(account),
    )
    message.attach_alternative(
        render_to_string("billing/email/budget_alert.html", context), "text/html"
    )
    return message
