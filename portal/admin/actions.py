"""How an account action runs, whichever it is: the confirmation step, the service call and what
the operator is told. The actions themselves are rows of ``account_actions.ACCOUNT_ACTIONS``."""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from portal.models import Account
from portal.principal import request_actor
from portal.services import AccountActionError

logger = logging.getLogger(__name__)

# How many account emails a result message names before it says "and N more".
MESSAGE_NAMES = 10

# An account the service changed, with what the service returned for it.
Changed = list[tuple[Account, Any]]


@dataclass(frozen=True)
class Confirmation:
    """The page between choosing an action and applying it. The form's cleaned data are passed
    to the action's service as keyword arguments."""

    form: type[forms.Form]
    title: str
    explanation: str
    submit_label: str


@dataclass(frozen=True)
class AccountAction:
    """One operator action on the accounts ticked in the list.

    ``service`` is called with ``account=`` (``accounts=`` when ``batch``), ``actor=`` and the
    confirmation form's fields; a result of None means the account needed no change. A batch
    service is called once for all the accounts and returns its results by account id; one error
    then fails them all, where otherwise each account succeeds or fails on its own.

    The messages may name the form's fields (``"Moved to {tier.name}:"``); each is followed by
    the emails of the accounts it is about. ``done`` is said of the changed accounts (unless
    ``describe`` gives one message per account instead), ``unchanged`` of the others (nothing
    said if empty); ``warnings`` adds what the operator must still know about the changed ones.
    """

    name: str
    label: str
    # The portal permission (codename) an operator needs to see and run the action.
    permission: str
    service: Callable[..., Any]
    done: str = ""
    unchanged: str = ""
    # None: the action runs as soon as it is chosen.
    confirm: Confirmation | None = None
    batch: bool = False
    # What the service may raise that is reported to the operator rather than failing the page.
    errors: tuple[type[Exception], ...] = (AccountActionError,)
    describe: Callable[[Account, Any], str] | None = None
    warnings: Callable[[Changed], Iterable[str]] | None = None


def admin_action(action: AccountAction) -> Callable[..., HttpResponse | None]:
    """``action`` as an entry of ``ModelAdmin.actions``."""

    def run(
        model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Account]
    ) -> HttpResponse | None:
        return account_action_run(model_admin, request, queryset, action)

    run.__name__ = run.__qualname__ = action.name
    return admin.action(description=action.label)(run)


def account_action_run(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Account],
    action: AccountAction,
) -> HttpResponse | None:
    """Show the action's confirmation for the selected accounts; on a valid submit (or at once,
    when it needs none) apply it and go back to the list (None)."""
    if action.confirm is None:
        _apply(model_admin, request, queryset, action, {})
        return None
    if "apply" in request.POST:
        form = action.confirm.form(request.POST)
        if form.is_valid():
            _apply(model_admin, request, queryset, action, form.cleaned_data)
            return None
    else:
        form = action.confirm.form()
    request.current_app = model_admin.admin_site.name
    context = {
        **model_admin.admin_site.each_context(request),
        "title": action.confirm.title,
        "explanation": action.confirm.explanation,
        "submit_label": action.confirm.submit_label,
        "opts": model_admin.opts,
        "form": form,
        "accounts": list(queryset.select_related("owner", "tier")),
        "action_name": action.name,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/portal/account/action_form.html", context)


def _apply(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Account],
    action: AccountAction,
    data: dict[str, Any],
) -> None:
    accounts = list(queryset.select_related("owner", "tier").order_by("pk"))
    done = action.done.format(**data)
    actor = request_actor(request)
    # Account id -> the service's result; an account a batch service leaves out is unchanged.
    results: dict[int, Any] = {}
    failures: dict[int, str] = {}
    if action.batch:
        try:
            results = action.service(accounts=accounts, actor=actor, **data)
        except action.errors as error:
            logger.warning("%s failed: %s", action.label, error)
            model_admin.message_user(request, f"{action.label} failed: {error}", messages.ERROR)
            return
    else:
        # Each account on its own: one failure does not undo the others.
        for account in accounts:
            try:
                results[account.pk] = action.service(account=account, actor=actor, **data)
            except action.errors as error:
                logger.warning("%s failed for account %s: %s", done, account.pk, error)
                failures[account.pk] = f"{account.owner.email}: {error}"
    changed = [(a, results[a.pk]) for a in accounts if results.get(a.pk) is not None]
    same = [a for a in accounts if results.get(a.pk) is None and a.pk not in failures]

    if changed and action.describe is not None:
        for account, result in changed:
            model_admin.message_user(request, action.describe(account, result), messages.SUCCESS)
    elif changed:
        emails = [account.owner.email for account, _ in changed]
        model_admin.message_user(request, f"{done} {_names(emails)}.", messages.SUCCESS)
    if same and action.unchanged:
        emails = [account.owner.email for account in same]
        unchanged = action.unchanged.format(**data)
        model_admin.message_user(request, f"{unchanged} {_names(emails)}.", messages.INFO)
    for failure in failures.values():
        model_admin.message_user(request, f"{done} failed — {failure}", messages.ERROR)
    if changed and action.warnings is not None:
        for warning in action.warnings(changed):
            model_admin.message_user(request, warning, messages.WARNING)


def _names(emails: list[str]) -> str:
    shown = ", ".join(emails[:MESSAGE_NAMES])
    more = len(emails) - MESSAGE_NAMES
    return f"{shown} and {more} more" if more > 0 else shown
