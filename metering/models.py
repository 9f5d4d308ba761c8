"""Usage as it lands in the database: rollups from the counters, credits, and alerts sent."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class RollupBatch(models.Model):
    """A drained counter bucket, recorded in the same transaction that applies it.

    The unique bucket key makes applying a bucket idempotent: a re-run after a crash finds the
    row and only clears the counters it left behind.
    """

    bucket = models.CharField(max_length=200, unique=True)
    units = models.BigIntegerField(default=0)
    requests = models.BigIntegerField(default=0)
    applied_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "rollup batches"

    def __str__(self) -> str:
        return self.bucket


class UsageRollup(models.Model):
    """Units and requests of one account, key and endpoint in one minute, and beside them the
    calls refused (by reason) and the errors of that minute. Only ``units`` is billed: the
    reporter sums it alone; the other counts are what the developer sees of failed calls."""

    account = models.ForeignKey(
        "portal.Account", on_delete=models.CASCADE, related_name="usage_rollups"
    )
    # None: the key was deleted since; its usage still counts for the account.
    api_key = models.ForeignKey(
        "portal.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    endpoint = models.CharField(max_length=100)
    minute = models.DateTimeField()
    units = models.BigIntegerField(default=0)
    requests = models.BigIntegerField(default=0)
    # Calls refused with a 429 (never billed): by the rate limit, by the period's quota (a
    # block tier's included units and credits), by the spend cap (a bill tier with a cap).
    refused_rate = models.PositiveBigIntegerField(default=0)
    refused_quota = models.PositiveBigIntegerField(default=0)
    refused_cap = models.PositiveBigIntegerField(default=0)
    # Calls admitted but answered with a status the endpoint does not bill (4xx, 5xx, an
    # upstream's failure): their units were given back; not counted in ``requests``.
    errors = models.PositiveBigIntegerField(default=0)
    # The report that carried these units to Stripe; None: not reported (yet, or free tier).
    meter_report = models.ForeignKey(
        "billing.MeterReport",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rollups",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "api_key", "endpoint", "minute"], name="usage_rollup_unique"
            ),
            models.CheckConstraint(
                condition=Q(units__gte=0), name="usage_rollup_units_not_negative"
            ),
        ]
        indexes = [
            # Usage page and alerts: one account's usage over a period.
            models.Index(fields=["account", "minute"], name="usage_account_minute_idx"),
            # The reporter finds the accounts with unreported rows of closed windows...
            models.Index(
                fields=["minute"],
                condition=Q(meter_report__isnull=True),
                name="usage_unreported_idx",
            ),
            # ...and claims one account's unreported rows of one window.
            models.Index(
                fields=["account", "minute"],
                condition=Q(meter_report__isnull=True),
                name="usage_unreported_account_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.endpoint} {self.minute:%Y-%m-%d %H:%M} {self.units}u"


class QuotaCredit(models.Model):
    """Extra units granted by an operator for one period, with who and why."""

    account = models.ForeignKey(
        "portal.Account", on_delete=models.CASCADE, related_name="quota_credits"
    )
    period_start = models.DateTimeField()
    units = models.PositiveBigIntegerField()
    reason = models.TextField()
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The key cache sums an account's credits for the current period.
            models.Index(fields=["account", "period_start"], name="credit_account_period_idx"),
        ]

    def __str__(self) -> str:
        return f"+{self.units} for {self.account_id}"


class UsageAlert(models.Model):
    """An alert at a percentage of the included units, claimed before its email is sent."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # Recorded but not emailed: the developer opted out of this (non-essential) alert, or a
        # higher threshold crossed in the same run was emailed instead.
        SKIPPED = "skipped", "Skipped (opted out or superseded)"

    account = models.ForeignKey("portal.Account", on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveIntegerField()
    units_at_claim = models.BigIntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "period_start", "threshold"], name="usage_alert_once_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.threshold}% for {self.account_id}"
