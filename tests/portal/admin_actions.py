"""Driving the account admin the way an operator's browser does: tick accounts in the list,
pick an action (the first POST), then fill in and submit its intermediate form (the second)."""

from collections.abc import Iterable

from django.test import Client
from django.urls import reverse

from portal.models import Account

CHANGELIST = "admin:portal_account_changelist"


def changelist_url() -> str:
    return reverse(CHANGELIST)


def choose_action(client: Client, action: str, accounts: Iterable[Account]):
    """The changelist's action form, as submitted by the "Go" button."""
    return client.post(
        changelist_url(),
        {"action": action, "_selected_action": [account.pk for account in accounts], "index": 0},
    )


def apply_action(client: Client, action: str, accounts: Iterable[Account], **fields):
    """The intermediate form's submit; follows the redirect back to the list."""
    return client.post(
        changelist_url(),
        {
            "action": action,
            "_selected_action": [account.pk for account in accounts],
            "apply": "yes",
            **fields,
        },
        follow=True,
    )


def run_action(client: Client, action: str, accounts: Iterable[Account], **fields):
    """Both steps, checking the form was shown in between."""
    accounts = list(accounts)
    form = choose_action(client, action, accounts)
    assert form.status_code == 200, form
    assert 'name="apply"' in form.content.decode()
    return apply_action(client, action, accounts, **fields)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def action_choices(response) -> set[str]:
    """The actions the changelist offers (empty when it shows no action form)."""
    action_form = response.context.get("action_form")
    if action_form is None:
        return set()
    return {name for name, _ in action_form.fields["action"].choices if name}


def api_get(client: Client, key: str, path: str = "/v1/me"):
    return client.get(path, headers={"authorization": f"Bearer {key}"})
