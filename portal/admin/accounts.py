"""The operators' view of developer accounts (organisations): the list with each row's usage and
member count, the account page with its members, keys, credits and usage reports, its members
page (``members.py``), and the account actions (``account_actions.py``)."""

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import Truncator

from billing.models import MeterReport
from billing.services.money_audit import money_audit, money_audit_periods
from metering.models import QuotaCredit
from metering.selectors import (
    PeriodUsage,
    accounts_period_usage,
    period_included_units,
    period_units,
    usage_rolled_up_at,
)
from portal.admin.account_actions import ACCOUNT_ACTIONS
from portal.admin.actions import admin_action
from portal.admin.api_keys import WholeKeySearchAdmin
from portal.admin.members import MembershipInline, members_view
from portal.admin.read_only import ReadOnlyInline
from portal.admin_overview import (
    AttentionFilter,
    ConvertedWeekFilter,
    SignupWeekFilter,
    SubscribedTierFilter,
)
from portal.models import Account, ApiKey, Membership
from portal.principal import request_actor
from portal.services import account_rename


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


class ApiKeyInline(ReadOnlyInline):
    model = ApiKey
    fk_name = "account"
    # Never the secret's hash: it is of no use to an operator and should not be copied about.
    fields = ("name", "prefix", "status", "created", "last_used", "expires_at", "revoked_at")
    readonly_fields = fields
    ordering = ["-created"]
    recent_rows = 50
    verbose_name_plural = "API keys (newest 50)"


class QuotaCreditInline(ReadOnlyInline):
    model = QuotaCredit
    fields = ("period_start", "units", "reason", "granted_by", "created")
    readonly_fields = fields
    ordering = ["-created"]
    recent_rows = 20
    verbose_name_plural = "quota credits (newest 20; grant more with the account action)"


class MeterReportInline(ReadOnlyInline):
    model = MeterReport
    fields = ("window_start", "window_end", "units", "status", "attempts", "last_error", "sent_at")
    readonly_fields = fields
    ordering = ["-window_start"]
    recent_rows = 20
    verbose_name_plural = "usage reports to Stripe (newest 20)"


@admin.register(Account)
class AccountAdmin(WholeKeySearchAdmin):
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
        "member_count",
        "usage_vs_quota",
        "created_on",
    ]
    list_display_links = ["email"]
    # The last four are the operators' overview's links (portal/admin_overview.py).
    list_filter = [
        "tier",
        "status",
        "payment_status",
        AttentionFilter,
        SubscribedTierFilter,
        SignupWeekFilter,
        ConvertedWeekFilter,
    ]
    # A prefix is matched from its start and a Stripe customer id exactly, so both use indexes.
    search_fields = [
        "owner__email",
        "memberships__user__email",
        "name",
        "^api_keys__prefix",
        "=stripe_customer__id",
    ]
    search_help_text = (
        "Any member's email, name, API key prefix (or a whole key) or Stripe customer id."
    )
    list_select_related = ["owner", "tier"]
    ordering = ["-created"]
    list_per_page = 50
    list_max_show_all = 200
    inlines = [MembershipInline, ApiKeyInline, QuotaCreditInline, MeterReportInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "owner_email",
                    "members_page",
                    "name",
                    "status",
                    "suspended_reason",
                    "tier",
                    "created",
                ]
            },
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
    # Only the name is edited here; everything else changes through the actions or from Stripe.
    readonly_fields = [field for field in flatten_fieldsets(fieldsets) if field != "name"]
    actions = [admin_action(action) for action in ACCOUNT_ACTIONS]

    # --- Permissions ---------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Accounts come from signup (or `create_api_key --create-account`), which sets them up.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Each account action needs its own permission (Account.Meta.permissions), so an
        # operator can be allowed to suspend but not to grant units.
        actions = super().get_actions(request)
        for action in ACCOUNT_ACTIONS:
            if not request.user.has_perm(f"{self.opts.app_label}.{action.permission}"):
                actions.pop(action.name, None)
        return actions

    # --- The list -------------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AccountChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        # A subquery, not a Count over a join: the member search joins memberships too, and
        # the count must not multiply by the members it matched.
        members = (
            Membership.objects.filter(account=OuterRef("pk"))
            .values("account")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(members=Coalesce(Subquery(members), Value(0), output_field=IntegerField()))
        )

    @admin.display(description="Members", ordering="members")
    def member_count(self, account: Account) -> int:
        return getattr(account, "members", 0)

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        """The usage column's header says when the rollups it sums were last written: it
        counts rolled-up minutes only, so it trails the live counters by a minute or more (or
        by as long as the rollup has been failing). Built per request, as the time changes."""
        as_of = usage_rolled_up_at()

        def usage_vs_quota(account: Account) -> str:
            return self.usage_vs_quota(account)

        usage_vs_quota.short_description = (  # type: ignore[attr-defined]
            "Usage this period (nothing rolled up yet)"
            if as_of is None
            else f"Usage this period, as of {as_of:%Y-%m-%d %H:%M} UTC"
        )
        return [usage_vs_quota if name == "usage_vs_quota" else name for name in self.list_display]

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

    @admin.display(description="Members")
    def members_page(self, account: Account) -> str:
        if account.pk is None:
            return "—"
        url = reverse("admin:portal_account_members", args=[account.pk])
        return format_html('<a href="{}">Add, re-role or remove members</a>', url)

    @admin.display(description="Current period")
    def period(self, account: Account) -> str:
        start, end = account.present_period()
        return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="Usage vs quota")
    def usage_this_period(self, account: Account) -> str:
        # One account: the exact figure, the minutes not rolled up yet included.
        start, end = account.present_period()
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
            '<a href="{}">Alerts</a> · <a href="{}">Audit log</a> · <a href="{}">Money audit</a>',
            _admin_list_url("admin:metering_usagerollup_changelist", account),
            _admin_list_url("admin:billing_meterreport_changelist", account),
            _admin_list_url("admin:metering_usagealert_changelist", account),
            _admin_list_url("admin:portal_auditentry_changelist", account),
            reverse("admin:portal_account_money_audit", args=[account.pk]),
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

    # --- The money audit -------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        audit = path(
            "<path:object_id>/money-audit/",
            self.admin_site.admin_view(self.money_audit_view),
            name="portal_account_money_audit",
        )
        members = path(
            "<path:object_id>/members/",
            self.admin_site.admin_view(self.members_view),
            name="portal_account_members",
        )
        # Ahead of the default routes: their "<path:object_id>/" would take these paths too.
        return [audit, members, *super().get_urls()]

    def members_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return members_view(self, request, object_id)

    def money_audit_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The account's units from the limiter to the invoice, figure by figure, for the
        current or the previous period (``?period=<its start, ISO 8601>``). Read-only; it reads
        Stripe (the meter summary, and once the period has ended its invoices)."""
        account = self.get_object(request, object_id)
        if account is None:
            raise Http404("No such account.")
        if not self.has_view_permission(request, account):
            raise PermissionDenied
        periods = money_audit_periods(account)
        chosen = request.GET.get("period")
        start = next((p[0] for p in periods if p[0].isoformat() == chosen), periods[0][0])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": account,
            "title": f"Money audit: {account.owner.email}",
            "audit": money_audit(account=account, period_start=start),
            "periods": [
                {"start": p_start, "end": p_end, "value": p_start.isoformat()}
                for p_start, p_end in periods
            ],
        }
        return TemplateResponse(request, "admin/portal/account/money_audit.html", context)

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        # Only the name is editable here; it is saved (and audited) by the service.
        if change and "name" in form.changed_data:
            account_rename(
                account=obj, actor=request_actor(request), name=form.cleaned_data["name"]
            )


def _usage_text(usage: PeriodUsage) -> str:
    """``1,234 / 10,000 (12 %)``, bold from 100 %."""
    text = f"{usage.units:,} / {usage.quota:,}"
    if usage.percent is None:
        return text
    text = f"{text} ({usage.percent} %)"
    return format_html("<strong>{}</strong>", text) if usage.percent >= 100 else text
