"""Money as the pricing and billing pages show it."""

from decimal import Decimal

from django import template

from billing.models import Budget
from billing.money import money_text
from billing.projection import budget_standing, invoice_projection_for

register = template.Library()


@register.filter
def money(cents, currency: str = "usd") -> str:
    """Whole or fractional cents as an amount: 2900 → "$29.00", "€29.00", or "29.00 CHF"."""
    if cents in (None, ""):
        return ""
    return money_text(cents, currency)


@register.filter
def per_thousand(tier) -> str:
    """The overage price of 1,000 units (a unit is usually a fraction of a cent)."""
    return money(Decimal(tier.overage_unit_price_cents) * 1000, tier.currency)


@register.inclusion_tag("billing/_money_summary.html")
def money_summary(account):
    """The dashboard's card of this period's spend, projection, spend cap and budget."""
    projection = invoice_projection_for(account)
    budget = Budget.objects.filter(account=account).first()
    return {
        "projection": projection,
        "budget_standing": budget_standing(budget, projection),
        "compact": True,
    }
