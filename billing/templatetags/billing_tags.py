"""Money as the pricing and billing pages show it."""

from decimal import Decimal

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

register = template.Library()

SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


@register.filter
def money(cents, currency: str = "usd") -> str:
    """Whole or fractional cents as an amount: 2900 → "$29.00", "€29.00", or "29.00 CHF"."""
    if cents in (None, ""):
        return ""
    amount = Decimal(cents) / 100
    text = intcomma(f"{amount:.2f}")
    symbol = SYMBOLS.get((currency or "").lower())
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


@register.filter
def per_thousand(tier) -> str:
    """The overage price of 1,000 units (a unit is usually a fraction of a cent)."""
    return money(Decimal(tier.overage_unit_price_cents) * 1000, tier.currency)
