from allauth.account.adapter import DefaultAccountAdapter

from portal.services import account_create


class AccountAdapter(DefaultAccountAdapter):
    """Every developer who signs up gets an Account on the default tier."""

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            account_create(owner=user)
        return user
