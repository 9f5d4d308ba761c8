"""Reads for the developer-facing pages and the API's key resolution."""

from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import QuerySet

from billing.models import Tier
from metering.selectors import period_credit_units
from portal.models import Account, ApiKey
from portal.principal import ApiPrincipal


def account_for_user(user: User) -> Account | None:
    try:
        return Account.objects.select_related("tier").get(owner=user)
    except Account.DoesNotExist:
        return None


def api_key_list(*, account: Account) -> QuerySet[ApiKey]:
    """An account's keys for its keys page, newest first, with the key that replaced each."""
    return ApiKey.objects.filter(account=account).select_related("replaced_by").order_by("-created")


def api_key_of_owner(*, owner: User, key_id: int) -> ApiKey | None:
    """One key, only if ``owner`` holds it; None otherwise (the page answers 404 either way)."""
    return ApiKey.objects.select_related("account").filter(pk=key_id, account__owner=owner).first()


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
