"""Admin bases for rows the code writes and the admin only shows: changes to them are made
where they are audited (an action, a service), never typed in."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


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


class ReadOnlyAdmin(admin.ModelAdmin):
    """A list to look things up in; changes are made where they are audited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
