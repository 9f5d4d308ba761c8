"""The account settings page: email addresses, password, two-factor authentication, usage
alert emails, the export of one's data, deleting the organisation and deleting one's login.

Email, password and two-factor are allauth's pages (its flows: verification, reauthentication,
recovery codes); this page says where each stands and links to them. The alert setting is
metering's form, included as it is on the dashboard. Export and the two deletions
(portal/account_deletion.py) are here.
"""

from collections.abc import Callable, Iterator

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_ratelimit.decorators import ratelimit

from metering.selectors import USAGE_ROW_FIELDS, account_usage_rows
from portal.account_deletion import (
    AccountDeletionError,
    login_delete,
    login_deletion_blockers,
    organisation_delete,
    organisations_deleted_with_login,
)
from portal.account_export import (
    INVOICE_FIELDS,
    account_invoice_rows,
    account_json_chunks,
    csv_lines,
)
from portal.forms import AccountDeleteForm
from portal.models import Account
from portal.organisation_access import SESSION_KEY, organisation_for
from portal.permissions import Action
from portal.principal import AuthenticatedHttpRequest

# Wrong passwords one signed-in user may try on the delete forms (both together, one counter):
# a session left open must not become a way to guess the password.
DELETE_RATE = "5/15m"
DELETE_RATE_GROUP = "portal.account-delete"
# The organisation's delete form is on the same page as the login's: its fields are prefixed.
ORGANISATION_FORM_PREFIX = "organisation"


def _render(
    request: AuthenticatedHttpRequest,
    account: Account,
    delete_form: AccountDeleteForm | None = None,
    status: int = 200,
    organisation_delete_form: AccountDeleteForm | None = None,
) -> HttpResponse:
    user = request.user
    if delete_form is None:
        delete_form = AccountDeleteForm(user=user)
    if organisation_delete_form is None:
        organisation_delete_form = AccountDeleteForm(user=user, prefix=ORGANISATION_FORM_PREFIX)
    return render(
        request,
        "portal/account.html",
        {
            "account": account,
            "email_addresses": EmailAddress.objects.filter(user=user).order_by("-primary", "email"),
            "has_password": user.has_usable_password(),
            "mfa_types": set(
                Authenticator.objects.filter(user=user).values_list("type", flat=True)
            ),
            "mfa_totp": Authenticator.Type.TOTP,
            "mfa_recovery": Authenticator.Type.RECOVERY_CODES,
            "mfa_enabled": "totp" in settings.MFA_SUPPORTED_TYPES,
            "delete_form": delete_form,
            "organisation_delete_form": organisation_delete_form,
            "member_count": account.memberships.count(),
            "login_deletion_blockers": login_deletion_blockers(user),
            "organisations_deleted_with_login": organisations_deleted_with_login(user),
        },
        status=status,
    )


@login_required
@never_cache
@require_GET
def account_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    # The member's own settings (email, password, two-factor) are every member's; the
    # organisation's sections on it (alerts, export, deletion) show by role.
    account = organisation_for(request, Action.ORGANISATION_VIEW).account
    return _render(request, account, AccountDeleteForm(user=request.user))


def _usage_csv(account: Account) -> Iterator[str]:
    return csv_lines(USAGE_ROW_FIELDS, account_usage_rows(account_id=account.pk))


def _invoices_csv(account: Account) -> Iterator[str]:
    return csv_lines(INVOICE_FIELDS, account_invoice_rows(account=account))


def _account_json(account: Account) -> Iterator[str]:
    return account_json_chunks(account=account, now=timezone.now())


# Each download: its content type and what writes its body.
EXPORTS: dict[str, tuple[str, Callable[[Account], Iterator[str]]]] = {
    "usage.csv": ("text/csv; charset=utf-8", _usage_csv),
    "invoices.csv": ("text/csv; charset=utf-8", _invoices_csv),
    "account.json": ("application/json", _account_json),
}


@login_required
@never_cache
@require_GET
def account_export(request: AuthenticatedHttpRequest, name: str) -> StreamingHttpResponse:
    """The data of the organisation the member acts for, and nobody else's; its owner's to
    take, as deleting it is."""
    if name not in EXPORTS:
        raise Http404("No such export")
    content_type, body = EXPORTS[name]
    account = organisation_for(request, Action.ORGANISATION_EXPORT).account
    response = StreamingHttpResponse(body(account), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="meterdesk-{stamp}-{name}"'
    return response


@login_required
@never_cache
@require_POST
@ratelimit(key="user", group=DELETE_RATE_GROUP, rate=DELETE_RATE, method="POST", block=True)
def account_delete_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Any member deletes their own login (and the organisations only they belong to)."""
    # The organisation only for showing the page again with the form's errors.
    account = organisation_for(request, Action.ORGANISATION_VIEW).account
    form = AccountDeleteForm(request.POST, user=request.user)
    if not form.is_valid():
        return _render(request, account, form, status=400)
    try:
        deleted = login_delete(user=request.user)
    except AccountDeletionError as exc:
        form.add_error(None, str(exc))
        return _render(request, account, form, status=409)
    logout(request)
    messages.success(
        request,
        f"Your login is deleted. A confirmation is on its way to {deleted.email}.",
    )
    return redirect("portal:home")


@login_required
@never_cache
@require_POST
@ratelimit(key="user", group=DELETE_RATE_GROUP, rate=DELETE_RATE, method="POST", block=True)
def organisation_delete_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The owner deletes the organisation the session acts for; every member's login stays."""
    account = organisation_for(request, Action.ORGANISATION_DELETE).account
    form = AccountDeleteForm(request.POST, user=request.user, prefix=ORGANISATION_FORM_PREFIX)
    if not form.is_valid():
        return _render(request, account, organisation_delete_form=form, status=400)
    try:
        deleted = organisation_delete(account=account, actor=request.user)
    except AccountDeletionError as exc:
        form.add_error(None, str(exc))
        return _render(request, account, organisation_delete_form=form, status=409)
    # The next page acts for another of their organisations (or a new personal one).
    request.session.pop(SESSION_KEY, None)
    messages.success(
        request,
        f"{deleted.name} is deleted: its keys are revoked and its members no longer have "
        f"access. A confirmation is on its way to {', '.join(deleted.told)}.",
    )
    return redirect("portal:dashboard")
