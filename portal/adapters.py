from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from portal.client_address import client_address
from portal.selectors import account_for_user
from portal.services import account_create


def organisation_name_default(email: str) -> str:
    return f"{email.partition('@')[0]}'s organisation"


class AccountAdapter(DefaultAccountAdapter):
    """Every developer who signs up gets an organisation of their own, on the default tier,
    named as they asked on the signup form (portal.forms.SignupForm). Someone
    signing up from an invitation gets one too, and joins the inviting organisation when they
    accept: the invitation may be revoked or expire in between, and a login that belongs to no
    organisation would be one more state every page must handle."""

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit and account_for_user(user) is None:
            name = getattr(form, "cleaned_data", {}).get("organisation_name", "").strip()
            account_create(owner=user, name=name or organisation_name_default(user.email))
        return user

    def get_client_ip(self, request: HttpRequest) -> str:
        """The address allauth's own limits count under (password reset, re-sent confirmations),
        read as django-ratelimit reads it. allauth's ALLAUTH_TRUSTED_PROXY_COUNT would answer a
        header shorter than the count with ImproperlyConfigured, a 500
        (allauth/core/internal/httpkit.py ``get_client_ip_from_xff``)."""
        return client_address(request)
