"""Writes for developer accounts."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from billing.selectors import tier_default
from portal.models import Account


@transaction.atomic
def account_create(*, owner: AbstractBaseUser, name: str = "") -> Account:
    """The account a developer gets at signup, on the default tier, its period starting now."""
    existing = Account.objects.filter(owner=owner).first()
    if existing is not None:
        return existing
    return Account.objects.create(
        owner=owner, name=name, tier=tier_default(), period_start=timezone.now()
    )
