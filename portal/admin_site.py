"""The operators' admin site: signed in through allauth with a second factor, or not at all.

Operators grant credit, change tiers and revoke keys, so the admin asks more of a login than
the portal does. Django passes every admin page through ``AdminSite.has_permission`` (its
``admin_view``: the model admins, their actions, the money audit, password change, logout), so
that one hook holds the rule, and ``login``, where Django sends whoever fails it, says what is
missing:

- nobody signed in: allauth's login page, ``?next=`` kept. That page is rate-limited per client
  address and per email (config/urls.py), so the admin login is limited exactly like the
  portal's; Django's own admin login form is never served (allauth documents the same redirect,
  ``secure_admin_login``: https://docs.allauth.org/en/latest/common/admin.html);
- an operator with no authenticator app: allauth's TOTP activation page, with a message why.
  Activating counts as this session's second factor (allauth's form has just checked a code
  from the new app), so the recovery codes page it ends on leads straight to the admin;
- an operator with one whose session never gave a code (signed in before enrolling, or enrolled
  in another session): allauth's MFA re-authentication, then back to the page asked for;
- someone signed in who is not staff: a 403 page saying so (allauth's login page would send a
  signed-in user straight back here, round and round).

Developers are untouched: MFA is theirs to turn on at /accounts/2fa/, never pushed.

This module sits beside the ``portal.admin`` package, not in it: Django imports the class named
by ``OperatorAdminConfig.default_site`` when ``admin.site`` is first used, and importing a module
of ``portal.admin`` first runs that package's registrations on ``admin.site``, which would then
build a second site and drop what was registered on the first.

The index opens on the operators' overview (``portal.admin_overview``: the business in figures,
each a link to the list it counts), then Meterdesk's own apps; dj-stripe's forty-odd models of
Stripe's objects come last, collapsed under one "Stripe (dj-stripe) records" section: read-only
copies an operator seldom opens, still one click away (and at /admin/djstripe/).
"""

from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authenticator_added
from django.contrib import admin, messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache

from portal.admin_overview import operator_overview

# What an operator still has to do before the admin opens: allauth's page for it, and why.
MFA_STEP_MESSAGES = {
    "mfa_activate_totp": (
        "Operators sign in with a second factor. Set up an authenticator app to open the admin."
    ),
    "mfa_reauthenticate": (
        "This session signed in without a code from your authenticator app. "
        "Enter one to open the admin."
    ),
}


def operator_mfa_step(request: HttpRequest) -> str | None:
    """The URL name of the allauth page a signed-in operator must pass before the admin opens,
    or None when this session has passed the second factor.

    allauth keeps a list of the authentication steps taken in the session
    (``allauth.account.authentication.get_authentication_records``); a code given at login
    (``mfa_authenticate``) or at re-authentication adds one with method "mfa"
    (allauth/mfa/base/internal/flows.py, ``post_authentication``), and so does enrolling here
    (``operator_enrolment_passes_mfa``). An authenticator app must also still be there: one
    turned off sends the operator to enrol again."""
    user = request.user
    if not Authenticator.objects.filter(user_id=user.pk, type=Authenticator.Type.TOTP).exists():
        return "mfa_activate_totp"
    records = get_authentication_records(request, user)
    if not any(record.get("method") == "mfa" for record in records):
        return "mfa_reauthenticate"
    return None


# Meterdesk's apps, in this order, ahead of the others (auth, allauth's, sites) listed by name.
OWN_APPS = ("portal", "billing", "metering")
# dj-stripe's copy of Stripe's objects: listed last, collapsed on the index, under this name.
STRIPE_APP = "djstripe"
STRIPE_APP_NAME = "Stripe (dj-stripe) records"


def _app_rank(app: dict[str, Any]) -> tuple[int, int]:
    label = app["app_label"]
    if label in OWN_APPS:
        return 0, OWN_APPS.index(label)
    return (2 if label == STRIPE_APP else 1), 0


class OperatorAdminSite(admin.AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and operator_mfa_step(request) is None

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        """Meterdesk's apps first, the others by name (Django's order), dj-stripe's last and
        named for what it holds. Also the order of the admin's navigation sidebar."""
        apps = sorted(super().get_app_list(request, app_label), key=_app_rank)
        for app in apps:
            if app["app_label"] == STRIPE_APP:
                app["name"] = STRIPE_APP_NAME
        return apps

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        """The overview, the apps, and dj-stripe's records apart (the template collapses them).

        The overview's figures are about accounts and each opens the account list, so only an
        operator who may view accounts sees them; the usage reports' links need that list's
        permission too."""
        apps = self.get_app_list(request)
        user = request.user
        context = {
            "overview": operator_overview() if user.has_perm("portal.view_account") else None,
            "may_view_reports": user.has_perm("billing.view_meterreport"),
            "app_list": [app for app in apps if app["app_label"] != STRIPE_APP],
            "stripe_app_list": [app for app in apps if app["app_label"] == STRIPE_APP],
            **(extra_context or {}),
        }
        return super().index(request, extra_context=context)

    @method_decorator(never_cache)
    @login_not_required
    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        next_url = request.GET.get(REDIRECT_FIELD_NAME, "")
        if not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            next_url = reverse("admin:index", current_app=self.name)
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(next_url, reverse("account_login"))
        if not (user.is_active and user.is_staff):
            return render(request, "portal/operator_required.html", status=403)
        step = operator_mfa_step(request)
        if step is None:
            return HttpResponseRedirect(next_url)
        messages.info(request, MFA_STEP_MESSAGES[step])
        return HttpResponseRedirect(f"{reverse(step)}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")


@receiver(authenticator_added)
def operator_enrolment_passes_mfa(
    sender: type[Authenticator],
    request: HttpRequest,
    user: AbstractBaseUser,
    authenticator: Authenticator,
    **kwargs: Any,
) -> None:
    """An operator who activates an authenticator app has just given a code from it (allauth's
    activation form checks one, allauth/mfa/totp/forms.py), so this session is recorded as one
    that passed the second factor, the way allauth records a code given at login. Only this
    session: another one, signed in before, is still asked for a code."""
    if getattr(user, "is_staff", False) and authenticator.type == Authenticator.Type.TOTP:
        record_authentication(
            request, user, "mfa", id=authenticator.pk, type=authenticator.type, enrolled=True
        )
