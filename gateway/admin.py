"""Upstreams and endpoints in the admin.

Every change goes through ``gateway.services`` (one audit entry, the route table told).
Where calls go (an upstream's ``base_url``) is set only by staff holding
``gateway.change_upstream_url``; others see it read-only. The signing secret is shown on the
upstream's own page (the operator copies it to the service) and never in a list; service
tokens are shown once, when issued.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from gateway.forms import StatusListField, statuses_text
from gateway.models import Endpoint, Upstream
from gateway.services import (
    UPSTREAM_AUDITED_FIELDS,
    ImportRefused,
    endpoint_update,
    upstream_service_token_issue,
    upstream_signing_secret_rotate,
    upstream_update,
)
from portal.principal import request_actor

URL_PERMISSION = "gateway.change_upstream_url"


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "base_url",
        "live_endpoints",
        "timeout_seconds",
        "max_request_bytes",
        "service_token_prefix",
        "updated_at",
    ]
    search_fields = ["name", "base_url"]
    fields = (
        "name",
        "base_url",
        "timeout_seconds",
        "max_request_bytes",
        "signing_secret",
        "service_token_prefix",
        "created_at",
        "updated_at",
    )
    actions = ["issue_service_token", "rotate_signing_secret"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Upstream]:
        return (
            super()
            .get_queryset(request)
            .annotate(live_count=Count("endpoints", filter=Q(endpoints__archived_at__isnull=True)))
        )

    @admin.display(description="Live endpoints", ordering="live_count")
    def live_endpoints(self, upstream: Any) -> int:
        return upstream.live_count

    def get_readonly_fields(self, request: HttpRequest, obj: Upstream | None = None) -> list[str]:
        readonly = ["signing_secret", "service_token_prefix", "created_at", "updated_at"]
        if obj is None:
            # Made on save: the secret shows on the upstream's page afterwards.
            readonly.remove("signing_secret")
        if not request.user.has_perm(URL_PERMISSION):
            readonly.append("base_url")
        return readonly

    def get_fields(self, request: HttpRequest, obj: Upstream | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("name", "base_url", "timeout_seconds", "max_request_bytes")
        return self.fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new upstream is a new place calls go: the URL permission too.
        return super().has_add_permission(request) and request.user.has_perm(URL_PERMISSION)

    def has_delete_permission(self, request: HttpRequest, obj: Upstream | None = None) -> bool:
        # Its endpoints' usage history names it: archive the endpoints instead.
        return False

    def save_model(self, request: HttpRequest, obj: Upstream, form: Any, change: bool) -> None:
        changes = {
            name: form.cleaned_data[name]
            for name in UPSTREAM_AUDITED_FIELDS
            if name in form.cleaned_data
        }
        if change:
            # The form has set the new values on obj already: start from the stored row so the
            # service sees (and audits) the change.
            obj = Upstream.objects.get(pk=obj.pk)
        upstream_update(upstream=obj, changes=changes, actor=request_actor(request))

    @admin.action(description="Issue a new service token (for /v1/keys/verify and settle)")
    def issue_service_token(self, request: HttpRequest, queryset: QuerySet[Upstream]) -> None:
        for upstream in queryset:
            token = upstream_service_token_issue(upstream=upstream, actor=request_actor(request))
            self.message_user(
                request,
                f"{upstream.name}: the new service token is {token} — copy it now, it is not "
                "shown again. The previous token stopped working.",
                messages.WARNING,
            )

    @admin.action(description="Rotate the signing secret")
    def rotate_signing_secret(self, request: HttpRequest, queryset: QuerySet[Upstream]) -> None:
        for upstream in queryset:
            upstream_signing_secret_rotate(upstream=upstream, actor=request_actor(request))
        self.message_user(
            request,
            "New signing secrets are in use from the next call; each is on its upstream's page. "
            "Give them to the upstream services now: calls signed with the new secret fail "
            "their old verification.",
            messages.WARNING,
        )


class LiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live"), ("archived", "Archived")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
        if self.value() == "live":
            return queryset.filter(archived_at__isnull=True)
        if self.value() == "archived":
            return queryset.filter(archived_at__isnull=False)
        return queryset


class EndpointForm(forms.ModelForm):
    billable_statuses = StatusListField(
        help_text="Statuses that are billed, e.g. 200-299 or 200, 201, 404. Others give every "
        "unit back."
    )

    class Meta:
        model = Endpoint
        fields = [
            "summary",
            "method",
            "public_path",
            "upstream_path",
            "cost",
            "max_cost",
            "scope",
            "timeout_seconds",
            "billable_statuses",
        ]

    def validate_unique(self) -> None:
        super().validate_unique()
        # The form leaves out route_key (set from public_path), and Django skips constraints
        # on fields a form leaves out: check the live route's uniqueness here, with a sentence.
        try:
            self.instance.validate_constraints()
        except ValidationError as exc:
            self.add_error(None, exc)


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = [
        "meter_name",
        "method",
        "public_path",
        "cost",
        "max_cost",
        "scope",
        "billed",
        "state",
        "updated_at",
    ]
    list_filter = [LiveFilter, "upstream", "method"]
    list_select_related = ["upstream"]
    search_fields = ["operation_id", "public_path", "upstream__name"]
    fields = [
        "upstream",
        "operation_id",
        "summary",
        "method",
        "public_path",
        "upstream_path",
        "cost",
        "max_cost",
        "scope",
        "timeout_seconds",
        "billable_statuses",
        "archived_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["upstream", "operation_id", "archived_at", "created_at", "updated_at"]
    actions = ["archive_selected", "revive_selected"]

    @admin.display(description="Meter name", ordering="operation_id")
    def meter_name(self, endpoint: Endpoint) -> str:
        return endpoint.meter_name

    @admin.display(description="Billed statuses")
    def billed(self, endpoint: Endpoint) -> str:
        return statuses_text(endpoint.billable_statuses)

    @admin.display(description="State", ordering="archived_at")
    def state(self, endpoint: Endpoint) -> str:
        return "Live" if endpoint.is_live else f"Archived {endpoint.archived_at:%Y-%m-%d}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Endpoints come from the upstream's OpenAPI document (manage.py import_openapi).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Endpoint | None = None) -> bool:
        # Archive instead: usage rows name the endpoint.
        return False

    def save_model(self, request: HttpRequest, obj: Endpoint, form: Any, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        stored = Endpoint.objects.select_related("upstream").get(pk=obj.pk)
        endpoint_update(endpoint=stored, changes=changes, actor=request_actor(request))

    def _set_archived(self, request: HttpRequest, queryset: QuerySet[Endpoint], archive: bool):
        changed = failed = 0
        for endpoint in queryset.select_related("upstream"):
            if endpoint.is_live != archive:
                continue
            try:
                endpoint_update(
                    endpoint=endpoint,
                    changes={"archived_at": timezone.now() if archive else None},
                    actor=request_actor(request),
                )
                changed += 1
            except (ImportRefused, ValidationError) as exc:
                failed += 1
                self.message_user(request, f"{endpoint.meter_name}: {exc}", messages.ERROR)
        verb = "Archived" if archive else "Revived"
        self.message_user(request, f"{verb} {changed} endpoint{'s' if changed != 1 else ''}.")

    @admin.action(description="Archive selected endpoints (stop selling them)")
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self._set_archived(request, queryset, archive=True)

    @admin.action(description="Revive selected endpoints")
    def revive_selected(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self._set_archived(request, queryset, archive=False)
