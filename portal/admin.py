from django.contrib import admin

from portal.models import Account, ApiKey, AuditEntry


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "tier", "status", "payment_status", "created"]
    list_filter = ["tier", "status", "payment_status"]
    search_fields = ["owner__email", "name", "api_keys__prefix", "stripe_customer__id"]
    raw_id_fields = ["owner", "stripe_customer"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "account", "created", "last_used", "expires_at", "revoked_at"]
    search_fields = ["prefix", "name", "account__owner__email"]
    readonly_fields = ["prefix", "secret_hash"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created", "actor", "action", "target", "account"]
    list_filter = ["action"]
    search_fields = ["target", "account__owner__email", "actor__email"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
