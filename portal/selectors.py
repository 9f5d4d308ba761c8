"""Reads for the developer-facing pages (keys, the organisation's members and invitations) and
the API's key resolution."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from billing.models import Tier
from metering.selectors import period_credit_units
from portal.models import Account, ApiKey, ApiKeyQuerySet, Invitation, Membership
from portal.permissions import Action
from portal.principal import ApiPrincipal


def account_for_user(user: User) -> Account | None:
    """The first organisation ``user`` joined (their personal one, unless they left it), tier
    loaded; None: they belong to none."""
    membership = membership_list(user=user).first()
    return None if membership is None else membership.account


def membership_list(*, user: User) -> QuerySet[Membership]:
    """The organisations ``user`` belongs to, as their memberships (organisation and tier
    loaded), in the order they joined: the organisation switcher's list."""
    return (
        Membership.objects.filter(user=user)
        .select_related("account__tier")
        .order_by("created", "pk")
    )


def membership_of(*, user: User, account_id: int) -> Membership | None:
    """``user``'s membership of organisation ``account_id`` (organisation and tier loaded);
    None: they are not a member, which every organisation-scoped page answers with 404."""
    return membership_list(user=user).filter(account_id=account_id).first()


def api_keys_visible(*, membership: Membership) -> ApiKeyQuerySet:
    """The keys of the member's organisation their role lets them see: every one with
    ``KEYS_VIEW_ALL``, the ones they made with ``KEYS_VIEW_OWN``, none otherwise."""
    keys = ApiKey.objects.filter(account_id=membership.account_id)
    if membership.allows(Action.KEYS_VIEW_ALL):
        return keys
    if membership.allows(Action.KEYS_VIEW_OWN):
        return keys.filter(created_by_id=membership.user_id)
    return keys.none()


def api_key_list(*, membership: Membership) -> QuerySet[ApiKey]:
    """The keys page's list: the keys the member may see, newest first, with the key that
    replaced each and who made each."""
    return (
        api_keys_visible(membership=membership)
        .select_related("replaced_by", "created_by")
        .order_by("-created")
    )


def api_key_of_member(*, membership: Membership, key_id: int) -> ApiKey | None:
    """One key, only if it is the member's organisation's and their role lets them see it;
    None otherwise (the page answers 404 either way: a key one may not see is not confirmed
    to exist)."""
    return (
        api_keys_visible(membership=membership).select_related("account").filter(pk=key_id).first()
    )


def account_alert_recipients(account: Account) -> list[str]:
    """Where an organisation's usage, budget and billing emails go: the addresses of its
    members who get alerts (``Membership.alerted``: owners and billing members unless they
    opted out, anyone else who opted in), each once, in the order they joined. If every one of
    them opted out, the primary owner's: an email about money or refused calls must reach
    someone, and it goes to the one person the operator and Stripe know the organisation by."""
    memberships = (
        Membership.objects.filter(account=account, user__is_active=True)
        .select_related("user")
        .order_by("created", "pk")
    )
    recipients: dict[str, str] = {}
    for membership in memberships:
        email = membership.user.email
        if membership.alerted and email:
            recipients.setdefault(email.lower(), email)
    if not recipients and account.owner.is_active and account.owner.email:
        return [account.owner.email]
    return list(recipients.values())


def api_key_for_prefix(prefix: str) -> ApiKey | None:
    """The key with this public prefix, with its account and tier (one indexed query)."""
    return ApiKey.objects.select_related("account__tier").filter(prefix=prefix).first()


def api_principal_build(key: ApiKey, *, now: datetime) -> ApiPrincipal:
    """Everything the API needs about a key, as plain data (one query: the period's credits)."""
    account = key.account
    tier = account.tier
    period_start, period_end = account.current_period(now)
    credits = period_credit_units(account_id=account.pk, period_start=period_start)
    return ApiPrincipal(
        key_id=key.pk,
        key_prefix=key.prefix,
        key_expires_at=key.expires_at,
        account_id=account.pk,
        account_active=account.is_active,
        suspended_reason=account.suspended_reason,
        tier_id=tier.pk,
        tier_slug=tier.slug,
        tier_name=tier.name,
        scopes=tier_scopes(tier),
        rate_limit=tier.rate_limit_per_minute,
        burst=tier.effective_burst,
        quota=tier.included_units + credits,
        overage_policy=str(tier.overage_policy),
        overage_cap=tier.overage_cap_units(),
        period_start=period_start,
        period_end=period_end,
        version=account.cache_version,
    )


def tier_scopes(tier: Tier) -> frozenset[str]:
    """The tier's scopes; a malformed value edited in by hand (a bare string) grants nothing
    rather than one scope per letter."""
    if not isinstance(tier.scopes, list):
        return frozenset()
    return frozenset(scope for scope in tier.scopes if isinstance(scope, str))


def tier_names_allowing(scope: str) -> list[str]:
    """Names of the public tiers whose scopes include ``scope``, cheapest first."""
    tiers = Tier.objects.filter(is_public=True).order_by("sort_order", "base_price_cents")
    return [tier.name for tier in tiers if scope in tier_scopes(tier)]


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    # The usable keys this member made, which keep working if they leave.
    keys: list[ApiKey]


def member_rows(*, account: Account) -> list[MemberRow]:
    """Every member of ``account``, owners first then by joining, each with the usable keys
    they made (two queries)."""
    keys_by_maker: dict[int, list[ApiKey]] = defaultdict(list)
    for key in account.api_keys.usable().filter(created_by__isnull=False).order_by("name"):
        assert key.created_by_id is not None
        keys_by_maker[key.created_by_id].append(key)
    memberships = account.memberships.select_related("user").order_by("created", "pk")
    return [MemberRow(membership=m, keys=keys_by_maker[m.user_id]) for m in memberships]


def membership_in(*, account: Account, membership_id: int) -> Membership | None:
    """One membership of ``account``; None for any other id (the page answers 404)."""
    return (
        Membership.objects.select_related("user", "account")
        .filter(pk=membership_id, account=account)
        .first()
    )


def invitation_list_open(*, account: Account) -> QuerySet[Invitation]:
    return account.invitations.filter(
        accepted_at=None, revoked_at=None, expires_at__gt=timezone.now()
    ).select_related("invited_by")


def invitation_in(*, account: Account, invitation_id: int) -> Invitation | None:
    """One invitation of ``account``; None for any other id (the page answers 404)."""
    return account.invitations.filter(pk=invitation_id).first()


def invitation_for_token(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("account", "invited_by")
        .filter(token_hash=Invitation.hash_token(token))
        .first()
    )
