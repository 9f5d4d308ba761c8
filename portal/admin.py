import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import stripe
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import Truncator

from billing.models import MeterReport
from billing.reporting import account_meter_reports_resend
from billing.services import BillingError, accounts_stripe_resync
from metering.models import QuotaCredit
from metering.selectors import period_included_units, period_units
from metering.services import quota_credit_grant
from portal import admin_forms
from portal.audit import audit_record
from portal.keys.format import split_key
from portal.models import Account, ApiKey, AuditEntry
from portal.selectors import PeriodUsage, accounts_period_usage
from portal.services import (
    AccountActionError,
    account_keys_revoke,
    account_reinstate,
    account_rename,
    account_suspend,
    account_tier_change,
    api_key_revoke,
)
from portal.signals import account_changed_send

logger = logging.getLogger(__name__)

admin.site.site_header = "Meterdesk operations"
admin.site.site_title = "Meterdesk operations"
admin.site.index_title = "Accounts, keys, usage and billing"

# How many account emails a result message names before it says "and N more".
MESSAGE_NAMES = 10
# What a Stripe-calling action reports per account instead of failing the whole page.
STRIPE_ERRORS = (AccountActionError, BillingError, stripe.StripeError)


def _names(emails: list[str]) -> str:
    shown = ", ".join(emails[:MESSAGE_NAMES])
    more = len(emails) - MESSAGE_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _admin_list_url(viewname: str, account: Account) -> str:
    return f"{reverse(viewname)}?{urlencode({'account__id__exact': account.pk})}"


class AccountChangeList(ChangeList):
    """The account list, with each row's usage vs quota read for the whole page at once."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # Evaluating the page here caches it on the queryset, so the template's loop reuses
        # these same instances (and their usage) instead of querying again.
        page = list(self.result_list)
        usage = accounts_period_usage(page)
        for account in page:
            account.period_usage = usage.get(account.pk)


class ReadOnlyInline(admin.TabularInline):
    """A ledger shown under the account: nothing is added, changed or deleted from here.

    ``recent_rows``: only that many newest rows are shown (None: all), so an account with
    years of history still opens fast.
    """

    extra = 0
    can_delete = False
    recent_rows: int | None = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ApiKeyInline(ReadOnlyInline):
    model = ApiKey
    fk_name = "account"
    # Never the secret's hash: it is of no use to an operator and should not be copied about.
    fields = ["name", "prefix", "status", "created", "last_used", "expires_at", "revoked_at"]
    readonly_fields = fields
    ordering = ["-created"]
    recent_rows = 50
    verbose_name_plural = "API keys (newest 50)"


class QuotaCreditInline(ReadOnlyInline):
    model = QuotaCredit
    fields = ["period_start", "units", "reason", "granted_by", "created"]
    readonly_fields = fields
    ordering = ["-created"]
    recent_rows = 20
    verbose_name_plural = "quota credits (newest 20; grant more with the account action)"


class MeterReportInline(ReadOnlyInline):
    model = MeterReport
    fields = ["window_start", "window_end", "units", "status", "attempts", "last_error", "sent_at"]
    readonly_fields = fields
    ordering = ["-window_start"]
    recent_rows = 20
    verbose_name_plural = "usage reports to Stripe (newest 20)"


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """Operators' view of developer accounts, and every action they take on one.

    Tier, status and billing fields are read-only in the form: they change only through the
    actions (audited, and the API's key cache told) or from Stripe. Accounts are made at signup
    and never deleted here: a suspended account keeps its usage and billing history.
    """

    list_display = [
        "email",
        "tier",
        "status_with_reason",
        "payment_status",
        "usage_vs_quota",
        "created_on",
    ]
    list_display_links = ["email"]
    list_filter = ["tier", "status", "payment_status"]
    # A prefix is matched from its start and a Stripe customer id exactly, so both use indexes.
    search_fields = ["owner__email", "name", "^api_keys__prefix", "=stripe_customer__id"]
    search_help_text = "Owner email, name, API key prefix (or a whole key) or Stripe customer id."
    list_select_related = ["owner", "tier"]
    ordering = ["-created"]
    list_per_page = 50
    list_max_show_all = 200
    inlines = [ApiKeyInline, QuotaCreditInline, MeterReportInline]
    fieldsets = [
        (
            None,
            {"fields": ["owner_email", "name", "status", "suspended_reason", "tier", "created"]},
        ),
        ("Usage", {"fields": ["period", "usage_this_period", "history"]}),
        (
            "Billing",
            {
                "fields": [
                    "stripe_customer",
                    "stripe_subscription_id",
                    "subscribed_tier",
                    "payment_status",
                    "cancel_at_period_end",
                    "grace_until",
                ]
            },
        ),
        ("Preferences and internals", {"fields": ["alerts_opt_out", "cache_version"]}),
    ]
    readonly_fields = [
        "owner_email",
        "status",
        "suspended_reason",
        "tier",
        "created",
        "period",
        "usage_this_period",
        "history",
        "stripe_customer",
        "stripe_subscription_id",
        "subscribed_tier",
        "payment_status",
        "cancel_at_period_end",
        "grace_until",
        "alerts_opt_out",
        "cache_version",
    ]
    actions = [
        "suspend",
        "reinstate",
        "revoke_keys",
        "change_tier",
        "grant_credit",
        "resend_reports",
        "resync_stripe",
    ]

    # --- Permissions ---------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Accounts come from signup (or `create_api_key --create-account`), which sets them up.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False

    def _has_account_perm(self, request: HttpRequest, codename: str) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def has_suspend_account_permission(self, request: HttpRequest) -> bool:
        return self._has_account_perm(request, "suspend_account")

    def has_revoke_keys_permission(self, request: HttpRequest) -> bool:
        return self._has_account_perm(request, "revoke_keys")

    def has_change_tier_permission(self, request: HttpRequest) -> bool:
        return self._has_account_perm(request, "change_tier")

    def has_grant_credit_permission(self, request: HttpRequest) -> bool:
        return self._has_account_perm(request, "grant_credit")

    def has_resend_reports_permission(self, request: HttpRequest) -> bool:
        return self._has_account_perm(request, "resend_reports")

    def has_resync_stripe_permission(self, request: HttpRequest) -> bool:
        return self._has_account_perm(request, "resync_stripe")

    # --- The list -------------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AccountChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Account], search_term: str
    ) -> tuple[QuerySet[Account], bool]:
        parts = split_key(search_term.strip())
        if parts is not None:
            # A whole key pasted (say, from a leak report): look it up by its public prefix.
            search_term = parts[0]
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="Email", ordering="owner__email")
    def email(self, account: Account) -> str:
        return account.owner.email

    @admin.display(description="Status", ordering="status")
    def status_with_reason(self, account: Account) -> str:
        if account.is_active:
            return account.get_status_display()
        return format_html(
            '{}<br><small title="{}">{}</small>',
            account.get_status_display(),
            account.suspended_reason,
            Truncator(account.suspended_reason).chars(40),
        )

    @admin.display(description="Created", ordering="created")
    def created_on(self, account: Account) -> str:
        return f"{account.created:%Y-%m-%d}"

    @admin.display(description="Usage this period")
    def usage_vs_quota(self, account: Account) -> str:
        usage: PeriodUsage | None = getattr(account, "period_usage", None)
        if usage is None:
            usage = accounts_period_usage([account])[account.pk]
        return _usage_text(usage)

    # --- The form -------------------------------------------------------------------------------

    @admin.display(description="Owner")
    def owner_email(self, account: Account) -> str:
        url = reverse("admin:auth_user_change", args=[account.owner_id])
        return format_html('<a href="{}">{}</a>', url, account.owner.email)

    @admin.display(description="Current period")
    def period(self, account: Account) -> str:
        start, end = account.current_period()
        return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="Usage vs quota")
    def usage_this_period(self, account: Account) -> str:
        # One account: the exact figure, the minutes not rolled up yet included.
        start, end = account.current_period()
        usage = PeriodUsage(
            units=period_units(account.pk, start, end),
            included_units=account.tier.included_units,
            credited_units=period_included_units(account, start) - account.tier.included_units,
        )
        text = _usage_text(usage)
        if usage.credited_units:
            text = f"{text}, {usage.credited_units:,} of it credited"
        return text

    @admin.display(description="History")
    def history(self, account: Account) -> str:
        if account.pk is None:
            return "—"
        return format_html(
            '<a href="{}">Usage rollups</a> · <a href="{}">Usage reports</a> · '
            '<a href="{}">Alerts</a> · <a href="{}">Audit log</a>',
            _admin_list_url("admin:metering_usagerollup_changelist", account),
            _admin_list_url("admin:billing_meterreport_changelist", account),
            _admin_list_url("admin:metering_usagealert_changelist", account),
            _admin_list_url("admin:portal_auditentry_changelist", account),
        )

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Account, inline: Any, prefix: str
    ) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        limit = getattr(inline, "recent_rows", None)
        if limit and obj is not None and obj.pk is not None:
            queryset = kwargs["queryset"]
            newest = queryset.filter(account=obj).values("pk")[:limit]
            kwargs["queryset"] = queryset.filter(pk__in=Subquery(newest))
        return kwargs

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        # Only the name is editable here; it is saved (and audited) by the service.
        if change and "name" in form.changed_data:
            account_rename(account=obj, actor=request.user, name=form.cleaned_data["name"])

    # --- Actions --------------------------------------------------------------------------------

    def _confirm(
        self,
        request: HttpRequest,
        queryset: QuerySet[Account],
        *,
        action: str,
        form_class: type,
        title: str,
        explanation: str,
        submit_label: str,
        apply: Callable[[dict[str, Any]], None],
    ) -> HttpResponse | None:
        """Show ``form_class`` for the selected accounts; on a valid submit, ``apply`` it and
        go back to the list (None)."""
        if "apply" in request.POST:
            form = form_class(request.POST)
            if form.is_valid():
                apply(form.cleaned_data)
                return None
        else:
            form = form_class()
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "explanation": explanation,
            "submit_label": submit_label,
            "opts": self.opts,
            "form": form,
            "accounts": list(queryset.select_related("owner", "tier")),
            "action_name": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/portal/account/action_form.html", context)

    def _each(
        self,
        request: HttpRequest,
        queryset: Iterable[Account],
        *,
        act: Callable[[Account], Any],
        done: str,
        unchanged: str = "",
        errors: tuple[type[Exception], ...] = (AccountActionError,),
    ) -> list[Account]:
        """Run ``act`` on each account on its own (one failure does not undo the others) and
        tell the operator what happened. Returns the accounts ``act`` changed (not None)."""
        changed, same, failed = [], [], []
        for account in queryset:
            try:
                result = act(account)
            except errors as error:
                logger.warning("%s failed for account %s: %s", done, account.pk, error)
                failed.append(f"{account.owner.email}: {error}")
                continue
            (changed if result is not None else same).append(account)
        if changed:
            emails = [account.owner.email for account in changed]
            self.message_user(request, f"{done} {_names(emails)}.", messages.SUCCESS)
        if same and unchanged:
            emails = [account.owner.email for account in same]
            self.message_user(request, f"{unchanged} {_names(emails)}.", messages.INFO)
        for failure in failed:
            self.message_user(request, f"{done} failed — {failure}", messages.ERROR)
        return changed

    def _selected(self, queryset: QuerySet[Account]) -> QuerySet[Account]:
        return queryset.select_related("owner", "tier").order_by("pk")

    @admin.action(
        description="Suspend (keys get 403 with the reason)", permissions=["suspend_account"]
    )
    def suspend(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        def apply(data: dict[str, Any]) -> None:
            self._each(
                request,
                self._selected(queryset),
                act=lambda account: account_suspend(
                    account=account, actor=request.user, reason=data["reason"]
                ),
                done="Suspended",
                unchanged="Already suspended for that reason:",
            )

        return self._confirm(
            request,
            queryset,
            action="suspend",
            form_class=admin_forms.SuspendForm,
            title="Suspend accounts",
            explanation="Every API call with these accounts' keys will be refused (403) with "
            "the reason below, within seconds. Their keys, usage and billing stay as they are.",
            submit_label="Suspend",
            apply=apply,
        )

    @admin.action(description="Reinstate suspended accounts", permissions=["suspend_account"])
    def reinstate(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        def apply(data: dict[str, Any]) -> None:
            self._each(
                request,
                self._selected(queryset),
                act=lambda account: account_reinstate(
                    account=account, actor=request.user, reason=data["reason"]
                ),
                done="Reinstated",
                unchanged="Not suspended, left as they were:",
            )

        return self._confirm(
            request,
            queryset,
            action="reinstate",
            form_class=admin_forms.NoteForm,
            title="Reinstate accounts",
            explanation="The keys of these accounts will work again within seconds.",
            submit_label="Reinstate",
            apply=apply,
        )

    @admin.action(description="Revoke all API keys", permissions=["revoke_keys"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        def apply(data: dict[str, Any]) -> None:
            self._each(
                request,
                self._selected(queryset),
                act=lambda account: account_keys_revoke(
                    account=account, actor=request.user, reason=data["reason"]
                ),
                done="Revoked every key of",
                unchanged="No working keys to revoke:",
            )

        return self._confirm(
            request,
            queryset,
            action="revoke_keys",
            form_class=admin_forms.RevokeKeysForm,
            title="Revoke all API keys",
            explanation="Every key of these accounts that still works is revoked, rolled keys "
            "in their grace period included. This cannot be undone.",
            submit_label="Revoke all keys",
            apply=apply,
        )

    @admin.action(description="Move to a tier", permissions=["change_tier"])
    def change_tier(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        def apply(data: dict[str, Any]) -> None:
            tier = data["tier"]
            moved = self._each(
                request,
                self._selected(queryset),
                act=lambda account: account_tier_change(
                    account=account, tier=tier, actor=request.user, reason=data["reason"]
                ),
                done=f"Moved to {tier.name}:",
                unchanged=f"Already on {tier.name}:",
            )
            subscribed = [account for account in moved if account.stripe_subscription_id]
            if subscribed:
                # The portal does not rewrite subscriptions: Stripe keeps billing what it bills,
                # and the subscription's next event (or the daily reconcile) restores its tier.
                self.message_user(
                    request,
                    "Stripe was not changed: "
                    + "; ".join(
                        f"{account.owner.email}'s subscription {account.stripe_subscription_id} "
                        f"still bills {(account.subscribed_tier or account.tier).name}"
                        for account in subscribed
                    )
                    + ". Its next event or the daily reconcile moves the account back to the "
                    "subscribed tier; change the subscription in Stripe to make the move stick.",
                    messages.WARNING,
                )

        return self._confirm(
            request,
            queryset,
            action="change_tier",
            form_class=admin_forms.ChangeTierForm,
            title="Move accounts to a tier",
            explanation="Rate limit, included units, overage policy and allowed endpoints follow "
            "the new tier within seconds. Any tier can be chosen, private ones included. Stripe "
            "subscriptions are not changed.",
            submit_label="Move",
            apply=apply,
        )

    @admin.action(description="Grant extra units for this period", permissions=["grant_credit"])
    def grant_credit(
        self, request: HttpRequest, queryset: QuerySet[Account]
    ) -> HttpResponse | None:
        def apply(data: dict[str, Any]) -> None:
            self._each(
                request,
                self._selected(queryset),
                act=lambda account: quota_credit_grant(
                    account=account, units=data["units"], reason=data["reason"], actor=request.user
                ),
                done=f"Granted {data['units']:,} extra units this period to",
            )

        return self._confirm(
            request,
            queryset,
            action="grant_credit",
            form_class=admin_forms.GrantCreditForm,
            title="Grant extra units",
            explanation="The units are added to each account's quota for its current period, "
            "within seconds; they lapse when the period ends.",
            submit_label="Grant",
            apply=apply,
        )

    @admin.action(description="Re-send failed usage reports", permissions=["resend_reports"])
    def resend_reports(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        outcomes = []

        def resend(account: Account) -> Any:
            entry = account_meter_reports_resend(account=account, actor=request.user)
            if entry is not None:
                outcomes.append((account, entry.after["reports"]))
            return entry

        self._each(
            request,
            self._selected(queryset),
            act=resend,
            done="Re-sent the failed usage reports of",
            unchanged="No failed or stale usage reports:",
            errors=STRIPE_ERRORS,
        )
        for account, statuses in outcomes:
            left = sorted(ident for ident, status in statuses.items() if status != "sent")
            if left:
                self.message_user(
                    request,
                    f"{account.owner.email}: {len(statuses) - len(left)} of {len(statuses)} "
                    f"sent; not sent: {', '.join(left)} — see each report's last error.",
                    messages.WARNING,
                )

    @admin.action(description="Re-sync from Stripe", permissions=["resync_stripe"])
    def resync_stripe(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        accounts = list(self._selected(queryset))
        try:
            entries = accounts_stripe_resync(accounts=accounts, actor=request.user)
        except STRIPE_ERRORS as error:
            logger.warning("Re-sync from Stripe failed: %s", error)
            self.message_user(request, f"Re-sync from Stripe failed: {error}", messages.ERROR)
            return
        for account in accounts:
            entry = entries.get(account.pk)
            if entry is None:
                continue
            changed = {
                name: (entry.before[name], value)
                for name, value in entry.after.items()
                if entry.before.get(name) != value
            }
            summary = (
                ", ".join(f"{name} {old} → {new}" for name, (old, new) in changed.items())
                if changed
                else "already in step"
            )
            self.message_user(
                request,
                f"Re-synced {account.owner.email} from Stripe: {summary}.",
                messages.SUCCESS,
            )
        unlinked = [account.owner.email for account in accounts if account.pk not in entries]
        if unlinked:
            self.message_user(
                request,
                f"No Stripe customer, nothing to re-sync: {_names(unlinked)}.",
                messages.INFO,
            )


def _usage_text(usage: PeriodUsage) -> str:
    """``1,234 / 10,000 (12 %)``, bold from 100 %."""
    text = f"{usage.units:,} / {usage.quota:,}"
    if usage.percent is None:
        return text
    text = f"{text} ({usage.percent} %)"
    return format_html("<strong>{}</strong>", text) if usage.percent >= 100 else text


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("usable", "Usable"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        now = timezone.now()
        if self.value() == "usable":
            return queryset.usable(now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys across all accounts, for operators. The secret's hash is never shown. Keys are made
    by developers (or ``create_api_key``), never here, since the secret must reach its owner;
    revoking goes through the service, so every process stops accepting the key within
    API_KEY_CACHE_SECONDS and the revoke is audited."""

    list_display = ["prefix", "name", "account", "key_status", "last_used", "created", "expires_at"]
    list_filter = [ApiKeyStatusFilter]
    list_select_related = ["account__owner"]
    # A prefix (or a whole key pasted from a leak report) is matched from its start: indexed.
    search_fields = ["^prefix", "name", "account__owner__email"]
    search_help_text = "Key prefix (or a whole key), key name or the account owner's email."
    fields = [
        "prefix",
        "name",
        "account",
        "key_status",
        "created",
        "last_used",
        "expires_at",
        "revoked_at",
        "replaced_by",
    ]
    readonly_fields = [
        "prefix",
        "account",
        "key_status",
        "created",
        "last_used",
        "revoked_at",
        "replaced_by",
    ]
    actions = ["revoke_selected"]
    ordering = ["-created"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Revoke instead: a deleted key would take its usage rows' key link with it.
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ApiKey], search_term: str
    ) -> tuple[QuerySet[ApiKey], bool]:
        parts = split_key(search_term.strip())
        if parts is not None:
            search_term = parts[0]
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="Status")
    def key_status(self, key: ApiKey) -> str:
        return key.status.capitalize()

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            # An operator's edit of a key is an operator action like any other.
            audit_record(
                actor=request.user,
                action="api_key.edit",
                account=obj.account,
                target=obj.prefix,
                before={name: _jsonable(form.initial.get(name)) for name in form.changed_data},
                after={name: _jsonable(form.cleaned_data.get(name)) for name in form.changed_data},
            )
        if change and "expires_at" in form.changed_data:
            # A new expiry must reach every process's key cache like a revoke does.
            account_changed_send(obj.account_id)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key=key, actor=request.user, reason="Revoked from the admin")
            revoked += 1
        self.message_user(
            request,
            f"Revoked {revoked} key{'s' if revoked != 1 else ''}; they stop working within "
            f"{settings.API_KEY_CACHE_SECONDS} seconds on every web process.",
            messages.SUCCESS,
        )


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The operator audit log. Insert-only: nobody adds, edits or deletes an entry here,
    superusers included; entries are written by the services that make the changes."""

    list_display = ["when", "actor_email", "action", "account_email", "other_target", "note"]
    list_filter = ["action", ("actor", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["account__owner__email", "target", "actor__email"]
    search_help_text = "Account email, target (email, key prefix) or the operator's email."
    list_select_related = ["actor", "account__owner"]
    date_hierarchy = "created"
    fields = ["created", "actor", "action", "account", "target", "reason", "changes"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    @admin.display(description="When (UTC)", ordering="created")
    def when(self, entry: AuditEntry) -> str:
        return f"{entry.created:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="Operator", ordering="actor__email")
    def actor_email(self, entry: AuditEntry) -> str:
        return entry.actor.email or entry.actor.get_username() if entry.actor else "system"

    @admin.display(description="Account", ordering="account__owner__email")
    def account_email(self, entry: AuditEntry) -> str:
        return entry.account.owner.email if entry.account is not None else entry.target

    @admin.display(description="Target")
    def other_target(self, entry: AuditEntry) -> str:
        # The account's email is the default target; only say it when it is something else.
        return "" if entry.account and entry.target == entry.account.owner.email else entry.target

    @admin.display(description="Reason")
    def note(self, entry: AuditEntry) -> str:
        return Truncator(entry.reason).chars(60)

    @admin.display(description="Before → after")
    def changes(self, entry: AuditEntry) -> str:
        return format_html(
            "<pre>{}</pre><p>→</p><pre>{}</pre>",
            json.dumps(entry.before, indent=2, sort_keys=True),
            json.dumps(entry.after, indent=2, sort_keys=True),
        )


def _jsonable(value: Any) -> Any:
    """A form value as the audit log's JSON keeps it (datetimes as ISO 8601)."""
    return value.isoformat() if hasattr(value, "isoformat") else value
