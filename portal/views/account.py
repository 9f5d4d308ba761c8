"""The account settings page: email addresses, password, two-factor authentication, usage
alert emails, the export of one's data, and deleting the account.

Email, password and two-factor are allauth's pages (its flows: verification, reauthentication,
recovery codes); this page says where each stands and links to them. The alert setting is
metering's form, included as it is on the dashboard. Export and deletion are here.
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
from portal.account_deletion import AccountDeletionError, account_delete
from portal.account_export import (
    INVOICE_FIELDS,
    account_invoice_rows,
    account_json_chunks,
    csv_lines,
)
from portal.forms import AccountDeleteForm
from portal.models import Account
from portal.principal import AuthenticatedHttpRequest
from portal.services import account_ensure

# Wrong passwords one signed-in user may try on the delete form: a session left open must not
# become a way to guess the password.
DELETE_RATE = "5/15m"


def _render(
    request: AuthenticatedHttpRequest,
    account: Account,
    delete_form: AccountDeleteForm,
    status: int = 200,
) -> HttpResponse:
    user = request.user
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
        },
        status=status,
    )


@login_required
@never_cache
@require_GET
def account_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    account = account_ensure(owner=request.user)
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
    """The signed-in developer's own data, and nobody else's: the account is the session's."""
    if name not in EXPORTS:
        raise Http404("No such export")
    content_type, body = EXPORTS[name]
    account = account_ensure(owner=request.user)
    response = StreamingHttpResponse(body(account), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="meterdesk-{stamp}-{name}"'
    return response


@login_required
@never_cache
@require_POST
@ratelimit(key="user", rate=DELETE_RATE, method="POST", block=True)
def account_delete_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    account = account_ensure(owner=request.user)
    form = AccountDeleteForm(request.POST, user=request.user)
    if not form.is_valid():
        return _render(request, account, form, status=400)
    try:
        deleted = account_delete(account=account)
    except AccountDeletionError as exc:
        form.add_error(None, str(exc))
        return _render(request, account, form, status=409)
    logout(request)
    messages.success(
        request,
        f"Your account is deleted. A confirmation is on its way to {deleted.email}.",
    )
    return redirect("portal:home")
