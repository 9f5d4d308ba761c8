from django.contrib import admin

from billing.models import MeterReport, Tier


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "base_price_cents", "included_units", "rate_limit_per_minute",
                    "overage_policy", "is_public", "is_default", "sort_order"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(MeterReport)
class MeterReportAdmin(admin.ModelAdmin):
    list_display = ["identifier", "account", "window_start", "units", "status", "attempts", "sent_at"]
    list_filter = ["status"]
