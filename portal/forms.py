"""Forms of the developer pages, the organisation pages and the signup form's organisation
name."""

from datetime import timedelta

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.contrib.auth.base_user import AbstractBaseUser

from portal.models import Role

EXPIRY_CHOICES = [
    ("", "Never"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In 1 year"),
]
# Seconds the old key keeps working after a roll.
GRACE_CHOICES = [
    ("0", "Stop the old key now"),
    ("3600", "Keep the old key for 1 hour"),
    ("86400", "Keep the old key for 24 hours"),
    ("604800", "Keep the old key for 7 days"),
]


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Where the key is used, e.g. “production server” or “CI”.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires",
        choices=EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name

    def expires_after(self) -> timedelta | None:
        days = self.cleaned_data.get("expires_in_days")
        return None if days is None else timedelta(days=days)


class ApiKeyRollForm(forms.Form):
    grace_seconds = forms.TypedChoiceField(
        label="Old key", choices=GRACE_CHOICES, coerce=int, initial="86400"
    )

    def grace(self) -> timedelta:
        return timedelta(seconds=self.cleaned_data["grace_seconds"])


class AccountDeleteForm(forms.Form):
    """Deleting an account asks for its password again: a session left open on a shared
    computer must not be enough."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, user: AbstractBaseUser, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.", code="password_incorrect")
        return password


# The longest organisation name (Account.name).
NAME_MAX_LENGTH = 200


class OrganisationNameForm(forms.Form):
    name = forms.CharField(label="Organisation name", max_length=NAME_MAX_LENGTH)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the organisation a name.")
        return name


# Any role is valid input: whether the member asking may give it (only an owner makes an
# owner) is the services' rule (portal.organisations), answered 403; the page offers only the
# roles they may give (``roles_assignable``).
class InvitationCreateForm(forms.Form):
    email = forms.EmailField(label="Email address", max_length=254)
    role = forms.TypedChoiceField(choices=Role.choices, coerce=Role)


class MembershipRoleForm(forms.Form):
    role = forms.TypedChoiceField(choices=Role.choices, coerce=Role)


class MembershipAlertsForm(forms.Form):
    # An unticked checkbox is not sent: absent means "no".
    receives = forms.BooleanField(label="Email me usage and budget alerts", required=False)


class SignupForm(AllauthSignupForm):
    """allauth's signup form (ACCOUNT_FORMS["signup"]) with the name of the organisation every
    new developer gets; portal.adapters.AccountAdapter makes it."""

    organisation_name = forms.CharField(
        label="Organisation name (optional)",
        max_length=NAME_MAX_LENGTH,
        required=False,
        help_text="Your company or team; you can rename it later. Left blank: "
        "“<your name>'s organisation”.",
        widget=forms.TextInput(attrs={"placeholder": "Organisation name (optional)"}),
    )
    field_order = ["email", "password1", "password2", "organisation_name"]
