"""Accounts (organisations: the billing subject), their members and invitations, and the API keys
they hold."""

import hashlib
import hmac
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.periods import period_containing

if TYPE_CHECKING:
    from portal.permissions import Action


class Account(models.Model):
    """An organisation, the billing subject: owns API keys, sits on a tier, maps to one Stripe
    customer, and has members (``Membership``), at least one of them an owner. Every developer
    gets a personal one at signup; an organisation bought for a team is the same thing with more
    members."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    class PaymentStatus(models.TextChoices):
        NONE = "none", "No subscription"
        ACTIVE = "active", "Active"
        TRIALING = "trialing", "Trialing"
        PAST_DUE = "past_due", "Past due"
        UNPAID = "unpaid", "Unpaid"
        CANCELED = "canceled", "Canceled"
        INCOMPLETE = "incomplete", "Incomplete"

    # The primary owner: the contact Stripe and the operators know the organisation by (the
    # Stripe customer's email, the admin's lists). Always a member with the owner role; an
    # ownership transfer moves it. Who may do what is ``Membership``'s business, not this field's.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_accounts"
    )
    name = models.CharField(max_length=200, blank=True)
    tier = models.ForeignKey("billing.Tier", on_delete=models.PROTECT, related_name="accounts")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    suspended_reason = models.CharField(max_length=300, blank=True)

    # Stripe side. The subscribed tier is remembered apart from ``tier`` so that a grace-period
    # downgrade can be undone by itself when the invoice is finally paid.
    stripe_customer = models.ForeignKey(
        "djstripe.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    subscribed_tier = models.ForeignKey(
        "billing.Tier", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payment_status = models.CharField(
        max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.NONE
    )
    cancel_at_period_end = models.BooleanField(default=False)
    # None: not in a grace period.
    grace_until = models.DateTimeField(null=True, blank=True)

    # The quota period. Paid accounts follow their subscription's period; free accounts a month
    # anchored on signup. ``current_period`` rolls these forward without a write.
    period_start = models.DateTimeField(default=timezone.now)
    period_end = models.DateTimeField(null=True, blank=True)

    # Bumped on every change the API's key cache must notice (revoke, roll, tier, suspension).
    cache_version = models.PositiveIntegerField(default=1)
    # Non-essential emails (usage alerts at 80 %); quota-reached and billing emails always go.
    alerts_opt_out = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Admin filters and the reconcile job walk accounts by payment state.
            models.Index(fields=["payment_status", "grace_until"], name="account_payment_idx"),
        ]
        # The operator actions of the admin, each grantable on its own
        # (portal/admin/account_actions.py).
        permissions = [
            ("suspend_account", "Can suspend and reinstate accounts"),
            ("revoke_keys", "Can revoke all API keys of an account"),
            ("change_tier", "Can move an account to another tier"),
            ("grant_credit", "Can grant extra units for the current period"),
            ("resend_reports", "Can re-send an account's failed usage reports"),
            ("resync_stripe", "Can re-sync an account from Stripe"),
            ("cancel_subscription", "Can cancel an account's subscription at once"),
        ]

    def __str__(self) -> str:
        return self.name or self.email

    @property
    def email(self) -> str:
        # dj-stripe reads the subscriber's email when it creates the Stripe customer.
        return self.owner.email

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    def current_period(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        now = now or timezone.now()
        if self.period_end and self.period_start <= now < self.period_end:
            return self.period_start, self.period_end
        return period_containing(self.period_start, now)

    def present_period(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """The period the account is in at ``now`` (the present by default), as pages and
        requests to change it read it. A paid period Stripe started on a whole minute begins for
        the account a second later (billing.services.subscriptions): in that second this is
        already the new period, where ``current_period`` gives the one before it, as the look-ups
        of an earlier period (``current_period(start - 1µs)``) need."""
        return self.current_period(max(now or timezone.now(), self.period_start))


class AccountPeriod(models.Model):
    """A billing period an account began: the ledger the usage pages list past periods from.

    ``Account.period_start`` alone cannot be that history: it is the start of the *quota*
    segment, which a tier switch moves to the switch minute in the middle of a billing period
    (billing.services.switch), and it is overwritten when a new period begins. A row is written
    whenever a period begins (signup, an upgrade's first paid period, a renewal, a return to the
    free tier); a tier switch writes none, since the billing period goes on (the switch itself is
    a ``billing.TierSwitch``). The periods between two rows are the monthly periods of the
    earlier one (``portal.periods.period_containing``), the last cut short where the next begins.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="periods")
    start = models.DateTimeField()
    # Stripe's end of a paid period; None: monthly periods anchored on ``start`` (free tier).
    end = models.DateTimeField(null=True, blank=True)
    # The tier the period began on; None: not recorded (periods from before this ledger).
    tier = models.ForeignKey(
        "billing.Tier", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["start"]
        constraints = [
            # Recording a period again (a replayed webhook, a reconcile) updates its row.
            models.UniqueConstraint(fields=["account", "start"], name="account_period_once"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} from {self.start:%Y-%m-%d %H:%M}"


class Role(models.TextChoices):
    """A member's role in an organisation; what each may do is the table in portal.permissions."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    BILLING = "billing", "Billing"


class Membership(models.Model):
    """One person's place in one organisation. Removing the row ends their access at their next
    request; the keys they made stay the organisation's (``ApiKey.created_by``)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    # Usage and budget alerts. None: the role's default (owners and billing members get them,
    # others do not); True or False: the member chose.
    receives_alerts = models.BooleanField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="membership_once"),
        ]
        indexes = [
            # The organisation switcher and every page's membership lookup go by user.
            models.Index(fields=["user", "account"], name="membership_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.get_role_display()})"

    def allows(self, action: "Action") -> bool:
        from portal.permissions import role_allows

        return role_allows(Role(self.role), action)

    @property
    def alerted(self) -> bool:
        """Whether alert emails reach this member."""
        if self.receives_alerts is not None:
            return self.receives_alerts
        return self.role in (Role.OWNER, Role.BILLING)


class Invitation(models.Model):
    """An invitation to join an organisation with a role, sent by email. Only a SHA-256 of its
    token is kept (the link in the email is the one copy); it works once, until it expires or is
    revoked, and only for the address it was sent to."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    # None: not accepted yet.
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # None: not revoked.
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            # The members page lists an organisation's invitations still open.
            models.Index(
                fields=["account", "accepted_at", "revoked_at"], name="invitation_open_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.account} ({self.get_role_display()})"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def is_open(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "open"


class ApiKeyQuerySet(models.QuerySet):
    def usable(self, now: datetime | None = None) -> "ApiKeyQuerySet":
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """A secret that unlocks the API for one account. Only a SHA-256 of the secret is kept.

    The full key reads ``<prefix>_<secret>``; the prefix (``mdk_live_`` + 8 characters) is public,
    unique and indexed, so a key is found without touching the hash, and scanners can spot leaks.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=32, unique=True)
    secret_hash = models.CharField(max_length=64)
    created = models.DateTimeField(default=timezone.now)
    # Approximate: written off the hot path by a periodic job.
    last_used = models.DateTimeField(null=True, blank=True)
    # None: never expires.
    expires_at = models.DateTimeField(null=True, blank=True)
    # None: not revoked.
    revoked_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )
    # The member who made it (a roll's replacement: who rolled it). None: made by an operator or
    # a command, or by someone whose login was deleted since. The key is the organisation's
    # either way: it keeps working when its maker leaves.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="api_keys_created",
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, self.hash_secret(secret))

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    @property
    def status(self) -> str:
        now = timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.replaced_by_id is not None:
            return "rolling"
        return "active"


class AuditEntryQuerySet(models.QuerySet):
    """Bulk writes are refused like ``save`` and ``delete`` refuse one entry's: rows are only
    ever inserted. The database refuses them too (migration 0004's triggers), SQL that does not
    come through here included; Django's own SET NULL when an account or operator is deleted
    goes through the plain base manager, and the triggers let that one change through."""

    def update(self, **kwargs: Any) -> int:
        raise ValueError("Audit entries are never changed once written.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit entries are never deleted.")


class AuditEntry(models.Model):
    """One operator action: who did what to which account, with the state before and after.

    Rows are only ever inserted; the admin shows them read-only, the ORM refuses to change or
    delete them, and so does the database. Deleting the account or the operator only unlinks
    the entry (SET NULL): its content stays, and ``target`` still names the account.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # None: the action was not about one account (e.g. a tier sync).
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.action} {self.target}"

    def save(self, *args, **kwargs) -> None:
        # Insert-only in code too, not just in the admin: an entry that could be edited later
        # would prove nothing. (Deleting the account or actor only nulls the link, in SQL.)
        if not self._state.adding:
            raise ValueError("Audit entries are never changed once written.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs) -> NoReturn:
        raise ValueError("Audit entries are never deleted.")
