from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from portal.client_address import client_address
from portal.services import account_create


class AccountAdapter(DefaultAccountAdapter):
    """Every developer who signs up gets an Account on the default tier."""

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            account_create(owner=user)
        return user

    def get_client_ip(self, request: HttpRequest) -> str:
        """The address allauth's own limits count under (password reset, re-sent confirmations),
        read as django-ratelimit reads it. allauth's ALLAUTH_TRUSTED_PROXY_COUNT would answer a
        header shorter than the count with ImproperlyConfigured, a 500
        (allauth/core/internal/httpkit.py ``get_client_ip_from_xff``)."""
        return client_address(request)
