"""The forms an operator fills in between choosing an admin action and applying it."""

from django import forms

from billing.models import Tier
from portal.models import Account

# A credit is a goodwill gesture or a fix, not a new tier: a billion units in one go is a typo.
MAX_CREDIT_UNITS = 1_000_000_000


class SuspendForm(forms.Form):
    reason = forms.CharField(
        max_length=Account._meta.get_field("suspended_reason").max_length,
        help_text="Shown to the developer: every call with their keys is refused with it (403).",
        widget=forms.TextInput(attrs={"size": 80}),
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why: the developer sees this reason.")
        return reason


class NoteForm(forms.Form):
    """An optional note for the audit log, for actions that need no other input."""

    reason = forms.CharField(
        required=False,
        label="Note for the audit log",
        widget=forms.TextInput(attrs={"size": 80}),
    )


class RevokeKeysForm(forms.Form):
    reason = forms.CharField(
        label="Reason (for the audit log)",
        help_text="Every working key stops within seconds; the developer can create new ones.",
        widget=forms.TextInput(attrs={"size": 80}),
    )


class ChangeTierForm(NoteForm):
    # Every tier, private and custom ones included: that is what this action is for.
    tier = forms.ModelChoiceField(queryset=Tier.objects.order_by("sort_order", "name"))
    field_order = ["tier", "reason"]


class GrantCreditForm(forms.Form):
    units = forms.IntegerField(
        min_value=1,
        max_value=MAX_CREDIT_UNITS,
        help_text="Added to the included units of each account's current period, at once.",
    )
    reason = forms.CharField(
        label="Reason (kept with the credit)",
        widget=forms.TextInput(attrs={"size": 80}),
    )
