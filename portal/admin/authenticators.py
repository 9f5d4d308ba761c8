"""Second factors in the admin: who set up which, when it was last used, and a reset.

allauth.mfa registers an admin of its own whose change form shows ``Authenticator.data``: the
authenticator app's secret and the recovery codes' seed, from which anyone allowed to view it
could produce the owner's codes. This one shows no secret, adds and changes nothing, and keeps
delete: an operator who lost their phone and recovery codes is reset by another operator
(delete both of their rows), and sets up an app again at their next admin visit
(portal/admin_site.py).
"""

from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.http import HttpRequest

# allauth.mfa comes before portal in INSTALLED_APPS, so its admin module has registered by now.
admin.site.unregister(Authenticator)


@admin.register(Authenticator)
class AuthenticatorAdmin(admin.ModelAdmin):
    list_display = ["user", "type", "created_at", "last_used_at"]
    list_filter = ["type"]
    search_fields = ["user__email"]
    search_help_text = "The owner's email."
    list_select_related = ["user"]
    fields = ("user", "type", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Authenticator | None = None) -> bool:
        return False
