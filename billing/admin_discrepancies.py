"""Billing > Usage discrepancies: the periods in which Stripe's meter event summary and our
reports disagree, as the daily usage reconcile found them (``billing.services.usage_reconcile``).

Registered from ``BillingConfig.ready``. The reconcile writes and closes these rows; an operator
reads them and marks settled the ones it cannot close (billed or credited by hand).
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from billing.models import UsageDiscrepancy
from billing.templatetags.billing_tags import money
from portal.audit import audit_record
from portal.principal import request_actor


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved__isnull=False)
        return queryset


@admin.register(UsageDiscrepancy)
class UsageDiscrepancyAdmin(admin.ModelAdmin):
    list_display = [
        "account",
        "period_start",
        "ours_units",
        "stripe_units",
        "difference",
        "amount",
        "missed_invoice",
        "detected",
        "resolved",
        "latest_finding",
    ]
    list_filter = [OpenFilter, "missed_invoice", ("period_start", admin.DateFieldListFilter)]
    search_fields = ["account__owner__email", "account__stripe_customer__id"]
    search_help_text = "Account email or Stripe customer id."
    list_select_related = ["account__owner", "account__tier"]
    ordering = ["-detected"]
    readonly_fields = (
        "account",
        "audit_link",
        "period_start",
        "period_end",
        "compared_until",
        "ours_units",
        "stripe_units",
        "difference",
        "amount",
        "missed_invoice",
        "detected",
        "checked",
        "resolved",
        "resolution",
    )
    fields = readonly_fields
    actions = ["mark_settled"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_settle_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_usagediscrepancy")

    @admin.display(description="Amount", ordering="amount_cents")
    def amount(self, row: UsageDiscrepancy) -> str:
        """Signed: above 0 Stripe bills more than our reports support, below 0 less."""
        text = money(abs(row.amount_cents), row.account.tier.currency)
        return f"-{text}" if row.amount_cents < 0 else text

    @admin.display(description="Latest finding")
    def latest_finding(self, row: UsageDiscrepancy) -> str:
        first = row.resolution.splitlines()[0] if row.resolution else ""
        return first if len(first) <= 100 else first[:99] + "…"

    @admin.display(description="Money audit")
    def audit_link(self, row: UsageDiscrepancy) -> str:
        url = reverse("admin:portal_account_money_audit", args=[row.account_id])
        query = urlencode({"period": row.period_start.isoformat()})
        return format_html('<a href="{}?{}">Money audit of this period</a>', url, query)

    @admin.action(description="Mark selected discrepancies settled", permissions=["settle"])
    def mark_settled(self, request: HttpRequest, queryset: QuerySet[UsageDiscrepancy]) -> None:
        now = timezone.now()
        actor = request_actor(request)
        settled = 0
        for row in queryset.filter(resolved__isnull=True).select_related("account__owner"):
            who = actor.email if actor else "an operator"
            row.resolution = f"{now:%Y-%m-%d %H:%M}: settled by {who}\n{row.resolution}".strip()
            row.resolved = now
            row.save(update_fields=["resolution", "resolved"])
            audit_record(
                actor=actor,
                action="usage_discrepancy.settle",
                account=row.account,
                before={"period_start": row.period_start.isoformat(), "resolved": None},
                after={"resolved": now.isoformat(), "amount_cents": row.amount_cents},
            )
            settled += 1
        self.message_user(request, f"{settled} discrepancy(ies) marked settled.", messages.SUCCESS)
