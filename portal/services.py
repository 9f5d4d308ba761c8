"""Writes for developer accounts and their API keys."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, DateTimeField, F, Min, Q, Value, When
from django.utils import timezone

from billing.models import Tier
from billing.selectors import tier_default
from portal.audit import audit_record, audit_snapshot
from portal.keys.format import new_prefix, new_secret
from portal.keys.last_used import last_used_buffer
from portal.models import Account, AccountPeriod, ApiKey, AuditEntry, Membership, Role
from portal.selectors import account_for_user
from portal.signals import account_changed_send


@transaction.atomic
def account_create(*, owner: User, name: str = "") -> Account:
    """A new organisation with ``owner`` as its owner, on the default tier, its period starting
    now: the personal one every developer gets at signup, or one made for a team.

    The free period starts on a whole minute: usage is counted per minute, and a period that
    starts inside a minute counts from the next one (see metering.limiter.base.usage_minute), so
    a whole-minute anchor loses nothing of the developer's first minute.
    """
    anchor = timezone.now().replace(second=0, microsecond=0)
    account = Account.objects.create(
        owner=owner, name=name, tier=tier_default(), period_start=anchor
    )
    Membership.objects.create(account=account, user=owner, role=Role.OWNER)
    account_period_begin(account=account)
    return account


def account_period_begin(*, account: Account) -> AccountPeriod:
    """Record that the account's current period (``period_start``, ``period_end``) began, on
    its current tier: called wherever a new billing period starts, never for a tier switch's
    segment. Recording the same start again updates the row. A period recorded as beginning
    later than this one is dropped: the account moved to this one instead (an operator's
    cancellation is dated back to the minute billing stopped, after the subscription's end
    was first recorded a moment later)."""
    AccountPeriod.objects.filter(account=account, start__gt=account.period_start).delete()
    period, _ = AccountPeriod.objects.update_or_create(
        account=account,
        start=account.period_start,
        defaults={"end": account.period_end, "tier_id": account.tier_id},
    )
    return period


@transaction.atomic
def account_ensure(*, owner: User) -> Account:
    """The first organisation ``owner`` belongs to (tier loaded), a personal one made on first
    need for a user who belongs to none: one who signed up (the signup adapter calls this), an
    operator created with ``createsuperuser`` who opens the portal, a member who left their
    only organisation. Locks the user's row so two first requests make one, not two."""
    User.objects.select_for_update().filter(pk=owner.pk).first()
    return account_for_user(owner) or account_create(owner=owner)


# Keys an account may hold at once, a bound on what one sign-up can make the key cache and the
# keys page carry. Active keys (working, not replaced): plenty for per-environment keys.
MAX_ACTIVE_KEYS_PER_ACCOUNT = 25
# Rolled keys still working in their grace period. A roll turns an active key into a rolling one
# and adds an active one, so rolling every key at once (a leak) still works; rolling again while
# all those graces run is refused, unless with no grace (the old key stops: nothing is added).
MAX_ROLLING_KEYS_PER_ACCOUNT = 25
# So an account never holds more usable keys than this, at any moment.
MAX_USABLE_KEYS_PER_ACCOUNT = MAX_ACTIVE_KEYS_PER_ACCOUNT + MAX_ROLLING_KEYS_PER_ACCOUNT
# Longest a rolled key may keep working next to its replacement.
MAX_ROLL_GRACE = timedelta(days=7)
# Keys per UPDATE statement when last-used times are written.
LAST_USED_CHUNK = 500


class ApiKeyError(Exception):
    """A key action that cannot be done; the message is written for the developer."""


def _api_key_issue(
    *, account: Account, name: str, expires_at: datetime | None, created_by: User | None
) -> tuple[ApiKey, str]:
    secret = new_secret()
    # The prefix space is 36**8; a clash is rare but the unique index, not luck, settles it.
    for _attempt in range(5):
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    account=account,
                    name=name,
                    prefix=new_prefix(),
                    secret_hash=ApiKey.hash_secret(secret),
                    expires_at=expires_at,
                    created_by=created_by,
                )
        except IntegrityError:
            continue
        return key, f"{key.prefix}_{secret}"
    raise ApiKeyError("Could not pick a unique key prefix; please try again.")


@transaction.atomic
def api_key_create(
    *,
    account: Account,
    name: str,
    expires_at: datetime | None = None,
    created_by: User | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its full secret, which is shown once and never stored. ``created_by``:
    the member who made it (None: an operator or a command)."""
    name = name.strip()
    if not name:
        raise ApiKeyError("Give the key a name, e.g. where it is used.")
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ApiKeyError("The expiry date must be in the future.")
    # Lock the account row so two concurrent creates (or rolls) cannot both pass the limit.
    Account.objects.select_for_update().filter(pk=account.pk).first()
    if _usable_key_counts(account, now).active >= MAX_ACTIVE_KEYS_PER_ACCOUNT:
        raise ApiKeyError(
            f"An account may hold {MAX_ACTIVE_KEYS_PER_ACCOUNT} active keys (keys still working "
            "in a roll's grace period are not counted); revoke one first."
        )
    return _api_key_issue(account=account, name=name, expires_at=expires_at, created_by=created_by)


@dataclass(frozen=True)
class _UsableKeyCounts:
    active: int
    rolling: int
    # When the first rolling key stops, freeing a rolling slot; None: no key is rolling.
    first_grace_end: datetime | None


def _usable_key_counts(account: Account, now: datetime) -> _UsableKeyCounts:
    rolling = Q(replaced_by__isnull=False)
    counts = account.api_keys.usable(now).aggregate(
        active=Count("pk", filter=~rolling),
        rolling=Count("pk", filter=rolling),
        first_grace_end=Min("expires_at", filter=rolling),
    )
    return _UsableKeyCounts(**counts)


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: User | None = None, reason: str = "") -> ApiKey:
    """Revoke a key; every process refuses it within API_KEY_CACHE_SECONDS. Revoking twice is
    a no-op. Revoking a key someone else made (an operator, an admin revoking a member's key)
    leaves an audit entry; a key with no recorded maker counts as its organisation's primary
    owner's, as keys from before teams do. ``actor`` None: the caller writes its own entry."""
    key = ApiKey.objects.select_for_update().select_related("account__owner").get(pk=key.pk)
    if key.revoked_at is not None:
        return key
    before = audit_snapshot(key, ["revoked_at"])
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    maker_id = key.created_by_id or key.account.owner_id
    if actor is not None and actor.pk != maker_id:
        audit_record(
            actor=actor,
            action="api_key.revoke",
            account=key.account,
            target=key.prefix,
            before=before,
            after=audit_snapshot(key, ["revoked_at"]),
            reason=reason,
        )
    account_changed_send(key.account_id)
    return key


@transaction.atomic
def api_key_roll(
    *, key: ApiKey, grace: timedelta, created_by: User | None = None
) -> tuple[ApiKey, str]:
    """Issue a replacement for ``key`` (same name and expiry date) and let the old key work
    for ``grace`` more; returns the new key and its secret. Refused with a grace while the
    account already has MAX_ROLLING_KEYS_PER_ACCOUNT keys in theirs. ``created_by``: who
    rolled it, the replacement's maker (None: an operator or a command)."""
    if grace < timedelta(0) or grace > MAX_ROLL_GRACE:
        raise ApiKeyError("The grace period must be between 0 and 7 days.")
    # The account first, then the key: the order every account-wide action locks in, and what
    # keeps two concurrent rolls from both taking the last rolling slot.
    account = account_for_update(key.account)
    key = ApiKey.objects.select_for_update().get(pk=key.pk, account=account)
    now = timezone.now()
    if not key.is_active(now):
        raise ApiKeyError("Only a working key can be rolled; create a new key instead.")
    if key.replaced_by_id is not None:
        raise ApiKeyError("This key was already rolled; roll its replacement instead.")
    grace_end = now + grace
    # With no grace the old key stops now and the count of working keys stays the same.
    if grace_end > now:
        counts = _usable_key_counts(account, now)
        if counts.rolling >= MAX_ROLLING_KEYS_PER_ACCOUNT:
            first_end = counts.first_grace_end
            # None: an operator took the expiry off every rolled key; no grace will end.
            wait = (
                "" if first_end is None else f" ({timezone.localtime(first_end):%Y-%m-%d %H:%M %Z})"
            )
            raise ApiKeyError(
                f"{counts.rolling} rolled keys are still working in their grace period, the "
                "most an account may have at once. Roll this key with no grace period, revoke "
                f"an old key, or wait until the first grace ends{wait}."
            )
    new_key, secret = _api_key_issue(
        account=account, name=key.name, expires_at=key.expires_at, created_by=created_by
    )
    if key.expires_at is None or key.expires_at > grace_end:
        key.expires_at = grace_end
    key.replaced_by = new_key
    key.save(update_fields=["expires_at", "replaced_by"])
    account_changed_send(key.account_id)
    return new_key, secret


def api_key_flush_last_used() -> int:
    """Write this process's buffered last-used times, one UPDATE per 500 keys; returns how many
    keys were written. A time only moves forward, so a late flush from another process cannot
    set a key's last use back."""
    times = last_used_buffer.drain()
    if not times:
        return 0
    items = sorted(times.items())
    try:
        for start in range(0, len(items), LAST_USED_CHUNK):
            chunk = items[start : start + LAST_USED_CHUNK]
            whens = []
            for key_id, unix_time in chunk:
                moment = Value(datetime.fromtimestamp(unix_time, tz=UTC), DateTimeField())
                newer = Q(last_used__isnull=True) | Q(last_used__lt=moment)
                whens.append(When(Q(pk=key_id) & newer, then=moment))
            ApiKey.objects.filter(pk__in=[key_id for key_id, _ in chunk]).update(
                last_used=Case(*whens, default=F("last_used"), output_field=DateTimeField())
            )
    except Exception:
        last_used_buffer.restore(times)
        raise
    return len(items)


# --- Operator actions ----------------------------------------------------------------------------
# What each admin action does to one account: the change, the key cache told (so the API sees
# it within API_KEY_CACHE_SECONDS), and exactly one audit entry, in one transaction. Actions that
# call Stripe run outside any transaction and write their entry after the call returns.


class AccountActionError(Exception):
    """An operator action that cannot be done; the message is written for the operator."""


# What a suspension or a reinstatement changes, as their audit entries record it.
SUSPENSION_FIELDS = ["status", "suspended_reason"]


def account_for_update(account: Account) -> Account:
    return Account.objects.select_for_update().select_related("owner", "tier").get(pk=account.pk)


@transaction.atomic
def account_suspend(*, account: Account, actor: User | None, reason: str) -> AuditEntry | None:
    """Refuse every call with the account's keys (403, with ``reason``) until it is reinstated.
    None: it was already suspended for that same reason."""
    reason = reason.strip()
    if not reason:
        raise AccountActionError("A suspension needs a reason: the developer is shown it.")
    account = account_for_update(account)
    before = audit_snapshot(account, SUSPENSION_FIELDS)
    account.status = Account.Status.SUSPENDED
    account.suspended_reason = reason
    after = audit_snapshot(account, SUSPENSION_FIELDS)
    if after == before:
        return None
    account.save(update_fields=["status", "suspended_reason"])
    account_changed_send(account.pk)
    return audit_record(
        actor=actor,
        action="account.suspend",
        account=account,
        before=before,
        after=after,
        reason=reason,
    )


@transaction.atomic
def account_reinstate(
    *, account: Account, actor: User | None, reason: str = ""
) -> AuditEntry | None:
    """Let a suspended account's keys work again. None: it was not suspended."""
    account = account_for_update(account)
    if account.is_active:
        return None
    before = audit_snapshot(account, SUSPENSION_FIELDS)
    account.status = Account.Status.ACTIVE
    account.suspended_reason = ""
    account.save(update_fields=["status", "suspended_reason"])
    account_changed_send(account.pk)
    return audit_record(
        actor=actor,
        action="account.reinstate",
        account=account,
        before=before,
        after=audit_snapshot(account, SUSPENSION_FIELDS),
        reason=reason.strip(),
    )


@transaction.atomic
def account_keys_revoke(*, account: Account, actor: User | None, reason: str) -> AuditEntry | None:
    """Revoke every key of the account that still works (rolled keys in their grace period
    too). None: it had none."""
    account = account_for_update(account)
    keys = list(account.api_keys.usable().order_by("created"))
    if not keys:
        return None
    for key in keys:
        # No actor here: this action's one entry below covers all the keys, not one each.
        api_key_revoke(key=key)
    return audit_record(
        actor=actor,
        action="account.keys_revoke",
        account=account,
        before={"usable_keys": [key.prefix for key in keys]},
        after={"usable_keys": []},
        reason=reason.strip(),
    )


@transaction.atomic
def account_tier_change(
    *, account: Account, tier: Tier, actor: User | None, reason: str = ""
) -> AuditEntry | None:
    """Put the account on ``tier`` (any tier, private ones included); limits, quota and
    endpoints follow at once. None: it was already on it.

    Only the portal changes: a Stripe subscription keeps billing what it bills, and its next
    event (or the daily reconcile) puts the account back on the subscribed tier.
    """
    account = account_for_update(account)
    if account.tier_id == tier.pk:
        return None
    before = audit_snapshot(account, ["tier"])
    account.tier = tier
    account.save(update_fields=["tier"])
    account_changed_send(account.pk)
    return audit_record(
        actor=actor,
        action="account.tier_change",
        account=account,
        before=before,
        after=audit_snapshot(account, ["tier"]),
        reason=reason.strip(),
    )


@transaction.atomic
def account_rename(*, account: Account, actor: User | None, name: str) -> AuditEntry | None:
    """An operator renames an account (the only field the admin form edits). None: unchanged."""
    account = account_for_update(account)
    name = name.strip()
    if account.name == name:
        return None
    before = audit_snapshot(account, ["name"])
    account.name = name
    account.save(update_fields=["name"])
    return audit_record(
        actor=actor,
        action="account.rename",
        account=account,
        before=before,
        after=audit_snapshot(account, ["name"]),
    )


@transaction.atomic
def api_key_update(
    *, key: ApiKey, actor: User | None, name: str, expires_at: datetime | None
) -> AuditEntry | None:
    """An operator edits a key's name or expiry (``expires_at`` None: it never expires), with
    an audit entry of what changed. None: nothing did. A new expiry reaches every process's key
    cache like a revoke does; one in the past stops the key within API_KEY_CACHE_SECONDS."""
    key = ApiKey.objects.select_for_update().select_related("account__owner").get(pk=key.pk)
    values = {"name": name.strip(), "expires_at": expires_at}
    changed = [field for field, value in values.items() if getattr(key, field) != value]
    if not changed:
        return None
    before = audit_snapshot(key, changed)
    for field in changed:
        setattr(key, field, values[field])
    key.save(update_fields=changed)
    if "expires_at" in changed:
        account_changed_send(key.account_id)
    return audit_record(
        actor=actor,
        action="api_key.edit",
        account=key.account,
        target=key.prefix,
        before=before,
        after=audit_snapshot(key, changed),
    )
