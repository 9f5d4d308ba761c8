"""Tiers as data, and the ledger of usage reported to Stripe."""

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

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

    def usage_cents(self, units: int) -> int:
        """What Stripe bills for ``units`` of one stretch on this tier's metered price, in whole
        cents: the included units at 0, each further unit at the overage price (0 on a ``block``
        tier, as ``billing.stripe_specs.metered_tiers`` pushes it), rounded half up once for the
        line (Tiered pricing, https://docs.stripe.com/products-prices/pricing-models#tiered-pricing).
        """
        if self.overage_policy != self.OveragePolicy.BILL:
            return 0
        overage = max(0, units - self.included_units)
        amount = Decimal(overage) * self.overage_unit_price_cents
        return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    @property
    def bills_usage(self) -> bool:
        """Whether usage past the included units costs money (what a budget is about)."""
        return self.overage_policy == self.OveragePolicy.BILL and self.overage_unit_price_cents > 0

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
        # Stripe accepted the call, then its asynchronous validation refused the event and
        # named this identifier (v1.billing.meter.error_report_triggered): never billed. An
        # operator fixes the cause and re-sends it under a new identifier.
        REJECTED = "rejected", "Rejected by Stripe — needs an operator"
        # Sent, and inside a window in which Stripe refused more events than it named: possibly
        # rejected. An operator reads the customer's meter event summary, then confirms or
        # re-sends it.
        SUSPECT = "suspect", "Possibly rejected — check Stripe"

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
    # Identifiers Stripe rejected for this report, oldest first, each with the customer it was
    # sent for, Stripe's error code and message, and the thin event that said so.
    rejections = models.JSONField(default=list, blank=True)
    # When an operator last re-sent it under a new identifier; None: never, the identifier
    # dates from ``created``.
    resent_at = models.DateTimeField(null=True, blank=True)
    # None: the event is dated at the window's last second. Set (1) on the first window after a
    # tier switch that Stripe applied later than that second: Stripe bills a new price only for
    # usage dated after the switch, so the event is dated just after it (billing.services.switch);
    # (2) on a rejected report re-sent to a newer customer: dated into that customer's current
    # subscription period, so it is billed late rather than never (billing.services.reports).
    not_before = models.DateTimeField(null=True, blank=True)

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
    def identifier_since(self) -> datetime:
        """When the current identifier was first given to Stripe, whose duplicate window runs
        from then."""
        return self.resent_at or self.created

    def next_identifier(self) -> str:
        """The identifier a re-send after a rejection carries, once the current one is recorded
        in ``rejections``: Stripe has seen the rejected ones and would answer them with
        "duplicate" (it keeps an identifier 24 hours, valid or not)."""
        return f"{self.rejections[0]['identifier']}-r{len(self.rejections)}"

    @property
    def event_time(self) -> datetime:
        """The meter event's timestamp: the window's last second, inside the window (so inside
        the billing period the window belongs to) and as recent as the window allows; never
        before ``not_before``."""
        moment = max(self.window_start, self.window_end - timedelta(seconds=1))
        return max(moment, self.not_before) if self.not_before is not None else moment


class StripeEventDestination(models.Model):
    """A Stripe event destination (API v2) that sends this portal thin events, with the secret
    its deliveries are signed with. dj-stripe's ``WebhookEndpoint`` covers v1 endpoints only;
    thin events never reach one."""

    stripe_id = models.CharField(max_length=255, unique=True)
    url = models.URLField(max_length=500)
    # Shown by Stripe once, in the answer to the create call.
    secret = models.CharField(max_length=255)
    enabled_events = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.stripe_id


class StripeThinEvent(models.Model):
    """A thin event Stripe delivered, recorded once: a second delivery of the same event id
    finds the row and changes nothing more."""

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=255)
    received = models.DateTimeField(default=timezone.now)
    # None: not applied yet (fetching the full event failed; Stripe delivers it again).
    processed = models.DateTimeField(null=True, blank=True)
    # What applying it changed, for the operator.
    outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["-received"]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"


class UsageDiscrepancy(models.Model):
    """A billing period in which Stripe's meter event summary and our report ledger disagree,
    found by the daily usage reconcile (``billing.services.usage_reconcile.usage_reconcile``).

    One open row per account and period: a later run updates its figures, and closes it when
    Stripe agrees again; an operator closes the ones the reconcile cannot settle.
    """

    account = models.ForeignKey(
        "portal.Account", on_delete=models.PROTECT, related_name="usage_discrepancies"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    # The compared span ends here: the period's end, or, for a period still running, the last
    # hour whose reports Stripe has had time to aggregate.
    compared_until = models.DateTimeField()
    # Units of our sent (and stale) reports dated in the compared span, and Stripe's summary.
    ours_units = models.PositiveBigIntegerField()
    stripe_units = models.PositiveBigIntegerField()
    # stripe_units - ours_units: above 0 Stripe bills units we never reported, below 0 it
    # misses some.
    difference = models.BigIntegerField()
    # What Stripe's bill for the period differs by, in whole cents, at the tier's graduated
    # metered price (included units free, the rest at the overage price, rounded once as Stripe
    # rounds a line). Same sign as ``difference``; 0 when both sides are within the included
    # units.
    amount_cents = models.BigIntegerField()
    # The units re-sent after the period's invoice was finalized: Stripe's summary has them,
    # that invoice never will. Such a row stays open until an operator bills it by hand.
    missed_invoice = models.BooleanField(default=False)
    detected = models.DateTimeField(default=timezone.now)
    checked = models.DateTimeField(default=timezone.now)
    # None: open.
    resolved = models.DateTimeField(null=True, blank=True)
    # What the reconcile (or the operator) found and did, latest first.
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-detected"]
        verbose_name_plural = "usage discrepancies"
        constraints = [
            # A re-run updates the period's open row instead of opening a second one.
            models.UniqueConstraint(
                fields=["account", "period_start"],
                condition=Q(resolved__isnull=True),
                name="usage_discrepancy_one_open_per_period",
            ),
            models.CheckConstraint(
                condition=Q(difference=models.F("stripe_units") - models.F("ours_units")),
                name="usage_discrepancy_difference_is_stripe_minus_ours",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.period_start:%Y-%m-%d}: {self.difference:+d} units"

    @property
    def is_open(self) -> bool:
        return self.resolved is None


class TierSwitch(models.Model):
    """A subscription moving to another paid tier at a whole minute (``effective_at``): usage
    counted before it is billed at the old tier's prices, from it on at the new tier's. With no
    ``to_tier``, an operator's immediate cancellation: billing ends at ``effective_at``.

    Stripe is asked to switch only once the usage before ``effective_at`` is reported and
    confirmed (``billing.services.switch``); until then the row stays scheduled.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        APPLIED = "applied", "Applied"
        # The subscription changed underneath (canceled, replaced) before it could be applied.
        CANCELED = "canceled", "Canceled"

    account = models.ForeignKey(
        "portal.Account", on_delete=models.CASCADE, related_name="tier_switches"
    )
    # None: the account was on no paid tier that Meterdesk knows.
    from_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # None: the subscription is canceled at once (an operator's action).
    to_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stripe_subscription_id = models.CharField(max_length=255)
    effective_at = models.DateTimeField()
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.SCHEDULED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    # When Stripe moved the subscription; None until then.
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-effective_at"]
        constraints = [
            # One switch on its way per account: a second one waits for the first.
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(status="scheduled"),
                name="tier_switch_one_scheduled_per_account",
            ),
        ]
        indexes = [
            # The every-minute job picks the scheduled switches that are due.
            models.Index(fields=["status", "effective_at"], name="tier_switch_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} → {self.to_tier_id} at {self.effective_at:%Y-%m-%d %H:%M}"


class Budget(models.Model):
    """What a developer means to spend on usage in a billing period (the charges past the
    included units, on top of the base price), and the amounts at which they want an email.

    Advisory: crossing it sends emails (``billing.services.budgets``) and refuses nothing. What
    refuses calls is the tier's spend cap (``Tier.spend_cap_cents``, enforced by the limiter's
    quota), which is why a budget may not exceed it.
    """

    account = models.OneToOneField(
        "portal.Account", on_delete=models.CASCADE, related_name="budget"
    )
    amount_cents = models.PositiveIntegerField()
    # Percentages of the budget to email at, e.g. [50, 80, 100].
    alert_percents = models.JSONField(default=list, blank=True)
    # Further amounts to email at, in whole cents, whatever the budget.
    alert_amounts_cents = models.JSONField(default=list, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="budget_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.amount_cents} cents"

    def alert_points_cents(self) -> list[int]:
        """Every amount, in whole cents, at which an email goes, lowest first; a percentage
        of the budget is rounded half up to the cent."""
        from_percents = {
            int(
                (Decimal(self.amount_cents) * percent / 100).quantize(
                    Decimal(1), rounding=ROUND_HALF_UP
                )
            )
            for percent in self.alert_percents
        }
        return sorted(from_percents | set(self.alert_amounts_cents))


class BudgetAlert(models.Model):
    """One budget email for one amount and billing period: claimed (the row written) before it
    is sent, so a second run, or two at once, never send it twice."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        # The send failed; the next run tries again.
        FAILED = "failed", "Failed"
        # Crossed in the same run as a higher amount, whose email says it all.
        SKIPPED = "skipped", "Skipped (a higher amount was emailed)"

    account = models.ForeignKey(
        "portal.Account", on_delete=models.CASCADE, related_name="budget_alerts"
    )
    # The billing period's start (not a tier switch's segment: a switch re-arms nothing).
    period_start = models.DateTimeField()
    threshold_cents = models.PositiveIntegerField()
    # What the period's usage had cost, and the budget, when the amount was found crossed.
    spent_cents = models.PositiveIntegerField()
    budget_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            # Each amount is emailed once per billing period, however often the job runs.
            models.UniqueConstraint(
                fields=["account", "period_start", "threshold_cents"],
                name="budget_alert_once_per_period",
            ),
        ]
        indexes = [
            # The job retries what is not sent yet.
            models.Index(fields=["status", "created"], name="budget_alert_retry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.period_start:%Y-%m-%d}: {self.threshold_cents} cents"
