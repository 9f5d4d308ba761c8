"""Forms of the developer's usage pages."""

from django import forms


class AlertSettingsForm(forms.Form):
    # Unchecked (absent from the POST) means opted out; the essential alerts are not optional.
    courtesy_alerts = forms.BooleanField(required=False)
