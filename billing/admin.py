from typing import TYPE_CHECKING

import stripe
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db import transaction

from billing.models import (
    Budget,
    BudgetAlert,
    MeterReport,
    StripeThinEvent,
    Tier,
    TierSwitch,
)
from billing.services.catalog import tiers_sync_to_stripe
from billing.services.errors import BillingError
from billing.services.reports import (
    MeterReportRefused,
    meter_report_confirm,
    usage_report_resend,
)
from billing.templatetags.billing_tags import money
from portal.principal import request_actor

if TYPE_CHECKING:
    # django-stubs' name for ModelAdmin.fieldsets: sections whose options are a TypedDict.
    from django.contrib.admin.options import _FieldsetSpec

# Editing these makes the tier's Stripe objects stale until the next push.
STRIPE_FIELDS = {
    "name",
    "description",
    "base_price_cents",
    "currency",
    "included_units",
    "overage_policy",
    "overage_unit_price_cents",
}


# Written by Push to Stripe (and the timestamps), never typed in.
_PUSHED_FIELDS = (
    "stripe_product_id",
    "stripe_base_price_id",
    "stripe_metered_price_id",
    "stripe_meter_id",
    "created",
    "updated",
)
# The tier page, section by section; the form's fields follow from it.
TIER_FIELDSETS: "_FieldsetSpec" = [
    (
        None,
        {"fields": ["name", "slug", "description", "is_public", "is_default", "sort_order"]},
    ),
    ("Price", {"fields": ["base_price_cents", "currency"]}),
    ("Limits", {"fields": ["included_units", "rate_limit_per_minute", "burst", "scopes"]}),
    (
        "Past the included units",
        {"fields": ["overage_policy", "overage_unit_price_cents", "spend_cap_cents"]},
    ),
    ("Support and alerts", {"fields": ["support_level", "alert_thresholds"]}),
    (
        "Stripe (filled by Push to Stripe)",
        {"fields": _PUSHED_FIELDS, "classes": ["collapse"]},
    ),
]
# What an operator types in: everything but the pushed fields.
EDITABLE_TIER_FIELDS = [
    field for field in flatten_fieldsets(TIER_FIELDSETS) if field not in _PUSHED_FIELDS
]


class TierForm(forms.ModelForm):
    class Meta:
        model = Tier
        # What an operator edits; the Stripe ids are written by the push only.
        fields = EDITABLE_TIER_FIELDS
        help_texts = {
            "scopes": "Endpoint scopes this tier may call, as a JSON list, "
            'e.g. ["basic", "compute"].',
            "alert_thresholds": "Percent of the included units at which the owner is emailed, "
            "e.g. [80, 100, 120].",
            "base_price_cents": "Whole cents per month; 0 with the block policy is a free tier "
            "(no Stripe subscription).",
            "overage_unit_price_cents": "Cents per unit past the included ones (fractions allowed, "
            "e.g. 0.1 = $1 per 1,000 units). Only billed with the bill policy.",
            "is_default": "New accounts start here, and accounts fall back here when a "
            "subscription ends or its grace period runs out. Exactly one tier is the default.",
        }

    def _get_validation_exclusions(self):
        # django-stubs leave out this private hook of BaseModelForm; Django 5.2 has it.
        exclude = super()._get_validation_exclusions()  # type: ignore[misc]
        # The one-default constraint is checked against the old default tier still holding
        # the flag; TierAdmin.save_model moves the flag in the same transaction, so it holds
        # after the save, and the database still enforces it.
        exclude.add("is_default")
        return exclude

    def clean_scopes(self):
        scopes = self.cleaned_data["scopes"]
        if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
            raise forms.ValidationError('A JSON list of scope names, e.g. ["basic"].')
        return scopes

    def clean_alert_thresholds(self):
        thresholds = self.cleaned_data["alert_thresholds"]
        valid = isinstance(thresholds, list) and all(
            isinstance(t, int) and not isinstance(t, bool) and 0 < t <= 1000 for t in thresholds
        )
        if not valid:
            raise forms.ValidationError("A JSON list of whole percentages, e.g. [80, 100, 120].")
        return sorted(set(thresholds))

    def clean(self):
        super().clean()
        # ModelForm.clean returns cleaned_data; the stubs type Form.clean's result as optional.
        data = self.cleaned_data
        bills = data.get("overage_policy") == Tier.OveragePolicy.BILL
        if bills and not data.get("overage_unit_price_cents"):
            self.add_error("overage_unit_price_cents", "The bill policy needs a price per unit.")
        return data


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    form = TierForm
    list_display = [
        "name",
        "slug",
        "monthly_price",
        "included_units",
        "rate_limit_per_minute",
        "overage_policy",
        "is_public",
        "is_default",
        "sort_order",
        "on_stripe",
    ]
    list_editable = ["is_public", "sort_order"]
    list_filter = ["is_public", "overage_policy"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    ordering = ["sort_order", "base_price_cents"]
    actions = ["push_to_stripe"]
    readonly_fields = _PUSHED_FIELDS
    fieldsets = TIER_FIELDSETS

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("stripe_product", "stripe_base_price", "stripe_metered_price")
        )

    @admin.display(description="Monthly", ordering="base_price_cents")
    def monthly_price(self, tier: Tier) -> str:
        return money(tier.base_price_cents, tier.currency) if tier.base_price_cents else "Free"

    @admin.display(description="On Stripe", boolean=True)
    def on_stripe(self, tier: Tier) -> bool | None:
        """True: pushed; False: paid but not pushed (cannot be bought); None: free."""
        if not tier.is_paid:
            return None
        return tier.stripe_metered_price is not None and tier.stripe_metered_price.active

    @admin.display(description="Product")
    def stripe_product_id(self, tier: Tier) -> str:
        return tier.stripe_product.id if tier.stripe_product else "—"

    @admin.display(description="Base price")
    def stripe_base_price_id(self, tier: Tier) -> str:
        return tier.stripe_base_price.id if tier.stripe_base_price else "—"

    @admin.display(description="Metered price")
    def stripe_metered_price_id(self, tier: Tier) -> str:
        return tier.stripe_metered_price.id if tier.stripe_metered_price else "—"

    @transaction.atomic
    def save_model(self, request, obj: Tier, form, change):
        if obj.is_default:
            # One default tier (a unique constraint): taking the flag moves it here.
            Tier.objects.filter(is_default=True).exclude(pk=obj.pk).update(is_default=False)
        super().save_model(request, obj, form, change)
        if change and obj.is_paid and STRIPE_FIELDS & set(form.changed_data):
            self.message_user(
                request,
                f"{obj.name}: Stripe still has the previous name or price. Select it and run "
                "“Push to Stripe” to apply the change (a new price replaces the old one).",
                messages.WARNING,
            )

    @admin.action(description="Push to Stripe")
    def push_to_stripe(self, request, queryset):
        try:
            results = tiers_sync_to_stripe(tiers=list(queryset), actor=request_actor(request))
        except (BillingError, stripe.StripeError) as error:
            self.message_user(request, f"Stripe refused the push: {error}", messages.ERROR)
            return
        for result in results:
            level = messages.SUCCESS if result.changed else messages.INFO
            self.message_user(request, result.describe(), level)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the code (the ledger, what Stripe told us): read, never typed in."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(MeterReport)
class MeterReportAdmin(ReadOnlyAdmin):
    """What was reported to Stripe. The reporter writes these rows; the admin only reads them
    and re-sends a failed one through the reporter's own service (same identifier; a report
    Stripe rejected goes under a new identifier to the account's current customer)."""

    list_display = [
        "identifier",
        "account",
        "window_start",
        "window_end",
        "units",
        "status",
        "attempts",
        "short_error",
        "sent_at",
    ]
    list_filter = ["status", ("window_start", admin.DateFieldListFilter)]
    search_fields = ["identifier", "account__owner__email", "stripe_customer_id"]
    search_help_text = "Identifier, account email or Stripe customer id."
    list_select_related = ["account__owner"]
    ordering = ["-window_start"]
    actions = ["resend_failed", "confirm_received"]

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("billing.change_meterreport")

    @admin.display(description="Last error")
    def short_error(self, report: MeterReport) -> str:
        return report.last_error if len(report.last_error) <= 80 else report.last_error[:79] + "…"

    @admin.action(
        description="Re-send selected failed, stale or rejected reports", permissions=["resend"]
    )
    def resend_failed(self, request, queryset):
        for report in queryset.order_by("window_start"):
            if report.status == MeterReport.Status.SENT:
                self.message_user(
                    request,
                    f"Not sent again: {report.identifier} was already sent on "
                    f"{report.sent_at:%Y-%m-%d %H:%M} UTC, and Stripe has it.",
                    messages.WARNING,
                )
                continue
            try:
                result = usage_report_resend(report_id=report.pk, actor=request_actor(request))
            except MeterReportRefused as refused:
                self.message_user(request, f"Not sent again: {refused}", messages.WARNING)
                continue
            if result.status == MeterReport.Status.SENT and result.identifier != report.identifier:
                self.message_user(
                    request,
                    f"Sent {result.identifier} (Stripe refused {report.identifier}) to "
                    f"{result.stripe_customer_id}: Stripe has its {result.units} units.",
                    messages.SUCCESS,
                )
            elif result.status == MeterReport.Status.SENT:
                self.message_user(
                    request,
                    f"Sent {result.identifier}: Stripe has its {result.units} units.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    f"Still {result.get_status_display().lower()}: {result.identifier}: "
                    f"{result.last_error or 'another send for this customer is in flight'}",
                    messages.ERROR,
                )

    @admin.action(
        description="Mark selected suspect reports as received (their units are in Stripe)",
        permissions=["resend"],
    )
    def confirm_received(self, request, queryset):
        for report in queryset.order_by("window_start"):
            if report.status != MeterReport.Status.SUSPECT:
                self.message_user(
                    request,
                    f"Unchanged: {report.identifier} is {report.get_status_display().lower()}, "
                    "not suspect.",
                    messages.WARNING,
                )
                continue
            meter_report_confirm(report_id=report.pk, actor=request_actor(request))
            self.message_user(
                request, f"Marked {report.identifier} sent: Stripe has its units.", messages.SUCCESS
            )


@admin.register(StripeThinEvent)
class StripeThinEventAdmin(ReadOnlyAdmin):
    """What Stripe's thin events (the meter error reports) told us, and what they changed;
    written by the receiver at /stripe/events/, read-only here."""

    list_display = ["stripe_id", "type", "received", "processed", "outcome"]
    list_filter = ["type", ("processed", admin.EmptyFieldListFilter)]
    search_fields = ["=stripe_id", "outcome"]
    ordering = ["-received"]


@admin.register(TierSwitch)
class TierSwitchAdmin(ReadOnlyAdmin):
    """Tier switches asked for on the pricing page: when each splits the period, and whether
    Stripe has switched yet (billing/services/switch.py; `manage.py apply_tier_switches`)."""

    list_display = ["account", "from_tier", "to_tier", "effective_at", "status", "applied_at"]
    list_filter = ["status", "to_tier"]
    search_fields = ["account__owner__email", "stripe_subscription_id"]
    list_select_related = ["account__owner", "from_tier", "to_tier"]
    ordering = ["-effective_at"]


@admin.register(Budget)
class BudgetAdmin(ReadOnlyAdmin):
    """Developers' budgets for usage charges, set on their billing page: read-only here (a
    developer's own choice)."""

    list_display = ["account", "amount", "alert_percents", "alert_amounts_cents", "updated"]
    search_fields = ["account__owner__email"]
    list_select_related = ["account__owner", "account__tier"]
    ordering = ["-updated"]

    @admin.display(description="Budget", ordering="amount_cents")
    def amount(self, budget: Budget) -> str:
        return money(budget.amount_cents, budget.account.tier.currency)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    """Budget emails, one per amount and billing period (billing/services/budgets.py;
    `manage.py send_budget_alerts`)."""

    list_display = [
        "created",
        "account",
        "period_start",
        "threshold_cents",
        "spent_cents",
        "budget_cents",
        "status",
        "attempts",
        "sent_at",
        "last_error",
    ]
    list_filter = ["status"]
    search_fields = ["account__owner__email"]
    list_select_related = ["account__owner"]
    ordering = ["-created"]
