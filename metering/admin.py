from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from metering.models import QuotaCredit, UsageAlert, UsageRollup


class LedgerAdmin(admin.ModelAdmin):
    """Rows the system writes and the admin only shows: rollups come from the counters, alerts
    from the alert job, credits from the account's "grant extra units" action (audited, and
    the key cache told), so none is added, edited or deleted here, by anyone."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Account", ordering="account__owner__email")
    def account_email(self, row: Any) -> str:
        return row.account.owner.email


@admin.register(UsageRollup)
class UsageRollupAdmin(LedgerAdmin):
    list_display = [
        "minute",
        "account_email",
        "key_prefix",
        "endpoint",
        "units",
        "requests",
        "meter_report",
    ]
    list_filter = ["endpoint", ("meter_report", admin.EmptyFieldListFilter)]
    search_fields = ["account__owner__email", "^api_key__prefix", "=meter_report__identifier"]
    search_help_text = "Account email, API key prefix or usage report identifier."
    list_select_related = ["account__owner", "api_key", "meter_report"]
    ordering = ["-minute"]
    # The biggest table: no second COUNT(*) over all of it on every page.
    show_full_result_count = False

    @admin.display(description="Key", ordering="api_key__prefix")
    def key_prefix(self, rollup: UsageRollup) -> str:
        return rollup.api_key.prefix if rollup.api_key else "deleted key"


@admin.register(UsageAlert)
class UsageAlertAdmin(LedgerAdmin):
    list_display = [
        "created",
        "account_email",
        "period_start",
        "threshold_percent",
        "units_at_claim",
        "status",
        "attempts",
        "sent_at",
        "last_error",
    ]
    list_filter = ["status", "threshold"]
    search_fields = ["account__owner__email"]
    list_select_related = ["account__owner"]
    ordering = ["-created"]

    @admin.display(description="Threshold", ordering="threshold")
    def threshold_percent(self, alert: UsageAlert) -> str:
        return f"{alert.threshold} %"


@admin.register(QuotaCredit)
class QuotaCreditAdmin(LedgerAdmin):
    list_display = ["created", "account_email", "period_start", "units", "reason", "granted_by"]
    list_filter = [("granted_by", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["account__owner__email", "reason"]
    list_select_related = ["account__owner", "granted_by"]
    ordering = ["-created"]
