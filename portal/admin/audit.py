"""The operator audit log, read-only for everyone."""

import json

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import Truncator

from portal.models import AuditEntry


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
    fields = ("created", "actor", "action", "account", "target", "reason", "changes")
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

    @admin.display(description="Who", ordering="actor__email")
    def actor_email(self, entry: AuditEntry) -> str:
        """The operator; a member of the organisation (not staff), marked "customer", for a
        change the customer made themselves (a plan bought or switched, a member invited or
        removed, an organisation deleted); "system" for a job or Stripe."""
        if entry.actor is None:
            return "system"
        who = entry.actor.email or entry.actor.get_username()
        return who if entry.actor.is_staff else f"{who} (customer)"

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
