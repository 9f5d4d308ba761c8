"""API keys in the admin: found by prefix or a whole pasted key, renamed or given a new
expiry, revoked; never made or deleted here."""

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from portal.keys.format import split_key
from portal.models import ApiKey, ApiKeyQuerySet
from portal.principal import request_actor
from portal.services import api_key_revoke, api_key_update

# What an operator may edit on a key; the service saves it, audits it and tells the key cache.
EDITABLE_KEY_FIELDS = ["name", "expires_at"]


class WholeKeySearchAdmin(admin.ModelAdmin):
    """A search box where a whole API key pasted (say, from a leak report) finds its rows by the
    key's public prefix; the secret part is never looked up."""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        parts = split_key(search_term.strip())
        if parts is not None:
            search_term = parts[0]
        return super().get_search_results(request, queryset, search_term)


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("usable", "Usable"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        # The admin's rows come from ApiKey.objects, so they have its filters (usable()).
        assert isinstance(queryset, ApiKeyQuerySet)
        now = timezone.now()
        if self.value() == "usable":
            return queryset.usable(now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(WholeKeySearchAdmin):
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
    fields = (
        "prefix",
        "name",
        "account",
        "key_status",
        "created",
        "last_used",
        "expires_at",
        "revoked_at",
        "replaced_by",
    )
    readonly_fields = tuple(field for field in fields if field not in EDITABLE_KEY_FIELDS)
    actions = ["revoke_selected"]
    ordering = ["-created"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Revoke instead: a deleted key would take its usage rows' key link with it.
        return False

    @admin.display(description="Status")
    def key_status(self, key: ApiKey) -> str:
        return key.status.capitalize()

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        # Keys are never added here, so this is always an edit.
        api_key_update(
            key=obj,
            actor=request_actor(request),
            name=form.cleaned_data["name"],
            expires_at=form.cleaned_data["expires_at"],
        )

    def has_revoke_keys_permission(self, request: HttpRequest) -> bool:
        # Revoking stops a customer's integration, so it takes the operator permission the
        # account action "Revoke all API keys" takes, not just the right to edit a key's name.
        return request.user.has_perm(f"{self.opts.app_label}.revoke_keys")

    # Django offers (and accepts) an action only to users with every permission it names:
    # ``permissions=["revoke_keys"]`` calls has_revoke_keys_permission (Django docs, "Admin
    # actions", "Setting permissions for actions").
    @admin.action(description="Revoke selected keys", permissions=["revoke_keys"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key=key, actor=request_actor(request), reason="Revoked from the admin")
            revoked += 1
        self.message_user(
            request,
            f"Revoked {revoked} key{'s' if revoked != 1 else ''}; they stop working within "
            f"{settings.API_KEY_CACHE_SECONDS} seconds on every web process.",
            messages.SUCCESS,
        )
