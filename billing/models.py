"""Tiers as data, and the ledger of usage reported to Stripe."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


def default_alert_thresholds() -> list[int]:
    return [80, 100, 120]


class Tier(models.Model):
    """What a developer buys: limits, quota, overage policy, endpoints and price.

    No code branches on a tier's name; everything a tier means is a field here.
    """

    class OveragePolicy(models.TextChoices):
        BLOCK = "block", "Block past the included units"
        BILL = "bill", "Bill each unit past the included ones"

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    # Whole cents per month; 0 is a free tier (no Stripe subscription needed).
    base_price_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    included_units = models.PositiveBigIntegerField(default=1000)
    rate_limit_per_minute = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1)]
    )
    # Units that may be spent at once before the per-minute pace applies; None: the minute's limit.
    burst = models.PositiveIntegerField(null=True, blank=True)
    overage_policy = models.CharField(
        max_length=8, choices=OveragePolicy.choices, default=OveragePolicy.BLOCK
    )
    # Price of one unit past the included ones, in cents, as precise as Stripe's
    # unit_amount_decimal (12 decimal places).
    overage_unit_price_cents = models.DecimalField(
        max_digits=20, decimal_places=12, default=Decimal(0)
    )
    # Most a period's overage may cost, in cents; None: no cap. Past it, calls are refused.
    spend_cap_cents = models.PositiveIntegerField(null=True, blank=True)
    # Endpoint scopes this tier may call; an endpoint declares the scope it needs.
    scopes = models.JSONField(default=list, blank=True)
    support_level = models.CharField(max_length=100, blank=True, default="Community")
    alert_thresholds = models.JSONField(default=default_alert_thresholds, blank=True)
    is_public = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    sort_order = models.PositiveIntegerField(default=0)

    # Stripe side, filled by the tier sync. One meter serves every tier; its id is kept here.
    stripe_product = models.ForeignKey(
        "djstripe.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stripe_base_price = models.ForeignKey(
        "djstripe.Price", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stripe_metered_price = models.ForeignKey(
        "djstripe.Price", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stripe_meter_id = models.CharField(max_length=255, blank=True)

    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "base_price_cents"]
        constraints = [
            # New accounts start on the one default tier.
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="tier_single_default"
            ),
            models.CheckConstraint(
                condition=Q(overage_unit_price_cents__gte=0), name="tier_overage_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_paid(self) -> bool:
        return self.base_price_cents > 0 or self.overage_policy == self.OveragePolicy.BILL

    @property
    def effective_burst(self) -> int:
        return self.burst or self.rate_limit_per_minute

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def overage_cap_units(self) -> int | None:
        """Units past the included ones that the spend cap pays for; None: no cap."""
        if self.spend_cap_cents is None or self.overage_policy != self.OveragePolicy.BILL:
            return None
        if self.overage_unit_price_cents <= 0:
            return None
        return int(Decimal(self.spend_cap_cents) / self.overage_unit_price_cents)


class MeterReport(models.Model):
    """One meter event sent (or to be sent) to Stripe for one account and window.

    The row is written, with its deterministic identifier, before Stripe is called; a retry sends
    the same identifier, so Stripe counts the window once whatever happens in between.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # Too old for Stripe to accept (35 days): an operator has to settle it by hand.
        STALE = "stale", "Stale — needs an operator"

    account = models.ForeignKey(
        "portal.Account", on_delete=models.PROTECT, related_name="meter_reports"
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    # 0: the window's report. 1, 2…: usage of the same window rolled up after it was reported
    # (the rollup ran late at a period's end), each its own meter event and identifier.
    sequence = models.PositiveSmallIntegerField(default=0)
    units = models.PositiveBigIntegerField()
    identifier = models.CharField(max_length=100, unique=True)
    event_name = models.CharField(max_length=100)
    stripe_customer_id = models.CharField(max_length=255)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-window_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "window_start", "sequence"],
                name="meter_report_one_per_account_window",
            ),
            models.CheckConstraint(
                condition=Q(window_end__gt=models.F("window_start")),
                name="meter_report_window_not_empty",
            ),
        ]
        indexes = [
            # The sender picks up what is not sent yet, oldest first.
            models.Index(fields=["status", "window_start"], name="meter_report_pending_idx"),
        ]

    def __str__(self) -> str:
        return self.identifier

    @staticmethod
    def identifier_for(account_id: int, window_start: datetime, sequence: int = 0) -> str:
        """Deterministic, so every retry of a window carries the one identifier Stripe dedups on."""
        base = f"mdk-{account_id}-{int(window_start.timestamp())}"
        return f"{base}-late{sequence}" if sequence else base

    @property
    def event_time(self) -> datetime:
        """The meter event's timestamp: the window's last second, inside the window (so inside
        the billing period the window belongs to) and as recent as the window allows."""
        return max(self.window_start, self.window_end - timedelta(seconds=1))
