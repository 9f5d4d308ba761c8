"""Reads for the developer-facing pages."""

from django.contrib.auth.base_user import AbstractBaseUser

from portal.models import Account


def account_for_user(user: AbstractBaseUser) -> Account | None:
    try:
        return Account.objects.select_related("tier").get(owner=user)
    except Account.DoesNotExist:
        return None
