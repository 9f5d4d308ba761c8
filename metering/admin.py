from django.contrib import admin

from metering.models import QuotaCredit, UsageAlert, UsageRollup


@admin.register(UsageRollup)
class UsageRollupAdmin(admin.ModelAdmin):
    list_display = ["account", "api_key", "endpoint", "minute", "units", "requests", "meter_report"]
    list_filter = ["endpoint"]


@admin.register(UsageAlert)
class UsageAlertAdmin(admin.ModelAdmin):
    list_display = ["account", "period_start", "threshold", "status", "attempts", "sent_at"]


@admin.register(QuotaCredit)
class QuotaCreditAdmin(admin.ModelAdmin):
    list_display = ["account", "period_start", "units", "granted_by", "created"]
