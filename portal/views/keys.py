"""The API keys pages: list, create, revoke, roll. Every key is looked up through its owner,
so another developer's key id answers 404, never 403 (which would confirm it exists).

A new secret is shown exactly once: the create and roll posts put it in the session and
redirect; the list page pops it for that one render (sent with Cache-Control: no-store).
Reloading the page shows it no more.
"""

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
from portal.models import Account, ApiKey
from portal.principal import AuthenticatedHttpRequest
from portal.selectors import api_key_list, api_key_of_owner
from portal.services import (
    ApiKeyError,
    account_ensure,
    api_key_create,
    api_key_revoke,
    api_key_roll,
)

# Session slot of a secret waiting for its one render.
NEW_KEY_SESSION = "portal_new_api_key"


def _owned_key(request: AuthenticatedHttpRequest, key_id: int) -> ApiKey:
    key = api_key_of_owner(owner=request.user, key_id=key_id)
    if key is None:
        raise Http404("No such key")
    return key


def _show_once(request: HttpRequest, key: ApiKey, secret: str) -> None:
    request.session[NEW_KEY_SESSION] = {"secret": secret, "name": key.name, "prefix": key.prefix}


def _render_list(
    request: HttpRequest, account: Account, *, status: int = 200, **context: Any
) -> HttpResponse:
    context.setdefault("roll_form", ApiKeyRollForm())
    response = render(
        request,
        "portal/keys.html",
        {
            "account": account,
            "keys": api_key_list(account=account),
            "revoke_within": settings.API_KEY_CACHE_SECONDS,
            **context,
        },
        status=status,
    )
    return response


@login_required
@never_cache
def key_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    return _render_list(request, account_ensure(owner=request.user), new_key=new_key)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def key_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    account = account_ensure(owner=request.user)
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        after = form.expires_after()
        try:
            key, secret = api_key_create(
                account=account,
                name=form.cleaned_data["name"],
                expires_at=None if after is None else timezone.now() + after,
            )
        except ApiKeyError as exc:
            form.add_error(None, str(exc))
        else:
            _show_once(request, key, secret)
            return redirect("portal:keys")
    status = 400 if request.method == "POST" else 200
    return render(request, "portal/keys_new.html", {"form": form}, status=status)


@login_required
@require_POST
def key_revoke(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    key = _owned_key(request, key_id)
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
    key = _owned_key(request, key_id)
    form = ApiKeyRollForm(request.POST)
    if not form.is_valid():
        return _render_list(
            request, key.account, status=400, error="Pick how long the old key keeps working."
        )
    try:
        new_key, secret = api_key_roll(key=key, grace=form.grace())
    except ApiKeyError as exc:
        return _render_list(request, key.account, status=400, error=str(exc))
    _show_once(request, new_key, secret)
    key.refresh_from_db(fields=["expires_at"])
    if key.expires_at and key.expires_at <= timezone.now():
        messages.success(request, f"Rolled “{key.name}”: the old key {key.prefix} has stopped.")
    else:
        until = timezone.localtime(key.expires_at).strftime("%Y-%m-%d %H:%M %Z")
        messages.success(
            request, f"Rolled “{key.name}”: the old key {key.prefix} keeps working until {until}."
        )
    return redirect("portal:keys")
