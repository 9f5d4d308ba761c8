"""Reads about tiers."""

from django.db.models import QuerySet

from billing.models import Tier

# The tier an installation starts with (also created by migration billing.0003).
FREE_TIER_DEFAULTS = {
    "name": "Free",
    "description": "Try the API at no cost.",
    "base_price_cents": 0,
    "included_units": 1000,
    "rate_limit_per_minute": 60,
    "overage_policy": Tier.OveragePolicy.BLOCK,
    "scopes": ["basic"],
    "support_level": "Community",
    "is_public": True,
    "sort_order": 0,
}


def tier_default() -> Tier:
    """The tier new accounts start on. There is always one: if an operator removed every tier,
    the free tier is made again rather than failing the next signup."""
    tier = Tier.objects.filter(is_default=True).first()
    if tier is not None:
        return tier
    tier, _ = Tier.objects.get_or_create(
        slug="free", defaults={**FREE_TIER_DEFAULTS, "is_default": True}
    )
    return tier


def tier_list_public() -> QuerySet[Tier]:
    return Tier.objects.filter(is_public=True).order_by("sort_order", "base_price_cents")
