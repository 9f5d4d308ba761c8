"""The API keys pages: list, create, revoke, roll, for the organisation the member acts for.

Every key is looked up through the member's organisation and what their role lets them see
(``portal.selectors.api_keys_visible``: a developer the keys they made, an admin or owner every
key), so a key id of another organisation, or another member's key a developer may not see,
answers 404, never 403 (which would confirm it exists). A role that may not act on keys at all
gets 403 before any key is looked up.

A new secret is shown exactly once, by the answer to the create or roll POST itself (sent with
Cache-Control: no-store): it is never written to the session, the database or a cookie, so
nothing stored anywhere can give it back. Reloading that answer re-sends the POST; a create
form carries a one-time token so the re-sent form makes no second key and sends the developer
to the list (without the secret); a re-sent roll finds its key already rolled.
"""

import secrets
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from portal.forms import ApiKeyCreateForm, ApiKeyRollForm
from portal.models import ApiKey, Membership
from portal.organisation_access import RoleRefused, membership_current, organisation_for
from portal.permissions import Action
from portal.principal import AuthenticatedHttpRequest
from portal.selectors import api_key_list, api_key_of_member
from portal.services import ApiKeyError, api_key_create, api_key_revoke, api_key_roll

# Tokens of the create forms this session already sent (a few, newest last): not secrets, only
# a way to tell a re-sent form (a reload, a double click) from a new one.
SENT_FORMS_SESSION = "portal_key_forms_sent"
SENT_FORMS_KEPT = 10
# Where a secret waited for its render before it stopped going through the session. Popped by
# the list page so a session from before that change does not keep one.
LEGACY_NEW_KEY_SESSION = "portal_new_api_key"


def _key_to_change(request: AuthenticatedHttpRequest, key_id: int) -> tuple[Membership, ApiKey]:
    """The member and the key they revoke or roll: 403 for a role that may change no key, 404
    for a key they cannot see, 403 for one they see but may not change (not theirs, and no
    ``KEY_REVOKE_ANY``)."""
    membership = membership_current(request)
    may_any = membership.allows(Action.KEY_REVOKE_ANY)
    if not (may_any or membership.allows(Action.KEY_REVOKE_OWN)):
        raise RoleRefused(membership, Action.KEY_REVOKE_OWN)
    key = api_key_of_member(membership=membership, key_id=key_id)
    if key is None:
        raise Http404("No such key")
    if not may_any and key.created_by_id != request.user.pk:
        raise RoleRefused(membership, Action.KEY_REVOKE_ANY)
    return membership, key


def _shown_once(key: ApiKey, secret: str) -> dict[str, str]:
    return {"secret": secret, "name": key.name, "prefix": key.prefix}


def _sent_forms(request: HttpRequest) -> list[str]:
    return request.session.get(SENT_FORMS_SESSION, [])


def _render_list(
    request: HttpRequest, membership: Membership, *, status: int = 200, **context: Any
) -> HttpResponse:
    context.setdefault("roll_form", ApiKeyRollForm())
    response = render(
        request,
        "portal/keys.html",
        {
            "account": membership.account,
            "keys": api_key_list(membership=membership),
            # Who made each key matters once one sees other members' keys.
            "shows_makers": membership.allows(Action.KEYS_VIEW_ALL),
            "may_revoke_any": membership.allows(Action.KEY_REVOKE_ANY),
            "revoke_within": settings.API_KEY_CACHE_SECONDS,
            **context,
        },
        status=status,
    )
    return response


@login_required
@never_cache
def key_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = organisation_for(request, Action.KEYS_VIEW_OWN)
    new_key = request.session.pop(LEGACY_NEW_KEY_SESSION, None)
    return _render_list(request, membership, new_key=new_key)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def key_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = organisation_for(request, Action.KEY_CREATE)
    form = ApiKeyCreateForm(request.POST or None)
    form_token = request.POST.get("form_token") or secrets.token_urlsafe(16)
    if request.method == "POST" and form_token in _sent_forms(request):
        messages.info(
            request,
            "That form was already sent: the key it created is listed below. Its secret was "
            "shown once and is not shown again; roll the key if you did not copy it.",
        )
        return redirect("portal:keys")
    if request.method == "POST" and form.is_valid():
        after = form.expires_after()
        try:
            key, secret = api_key_create(
                account=membership.account,
                name=form.cleaned_data["name"],
                expires_at=None if after is None else timezone.now() + after,
                created_by=request.user,
            )
        except ApiKeyError as exc:
            form.add_error(None, str(exc))
        else:
            sent = [*_sent_forms(request), form_token]
            request.session[SENT_FORMS_SESSION] = sent[-SENT_FORMS_KEPT:]
            return _render_list(request, membership, new_key=_shown_once(key, secret))
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "form_token": form_token}
    return render(request, "portal/keys_new.html", context, status=status)


@login_required
@require_POST
def key_revoke(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    _membership, key = _key_to_change(request, key_id)
    api_key_revoke(key=key, actor=request.user)
    messages.success(
        request,
        f"Revoked “{key.name}” ({key.prefix}). It stops working within "
        f"{settings.API_KEY_CACHE_SECONDS} seconds.",
    )
    return redirect("portal:keys")


@login_required
@never_cache
@require_POST
def key_roll(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    membership, key = _key_to_change(request, key_id)
    form = ApiKeyRollForm(request.POST)
    if not form.is_valid():
        return _render_list(
            request, membership, status=400, error="Pick how long the old key keeps working."
        )
    try:
        new_key, secret = api_key_roll(key=key, grace=form.grace(), created_by=request.user)
    except ApiKeyError as exc:
        return _render_list(request, membership, status=400, error=str(exc))
    key.refresh_from_db(fields=["expires_at"])
    if key.expires_at and key.expires_at <= timezone.now():
        messages.success(request, f"Rolled “{key.name}”: the old key {key.prefix} has stopped.")
    else:
        until = timezone.localtime(key.expires_at).strftime("%Y-%m-%d %H:%M %Z")
        messages.success(
            request, f"Rolled “{key.name}”: the old key {key.prefix} keeps working until {until}."
        )
    return _render_list(request, membership, new_key=_shown_once(new_key, secret))
