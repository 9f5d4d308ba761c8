"""Money as the developer reads it: whole or fractional cents shown in the tier's currency."""

from decimal import Decimal

from django.contrib.humanize.templatetags.humanize import intcomma

SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def money_text(cents: Decimal | int | str, currency: str = "usd") -> str:
    """2900 → "$29.00", "€29.00", or "29.00 CHF"."""
    amount = Decimal(cents) / 100
    text = intcomma(f"{amount:.2f}")
    symbol = SYMBOLS.get((currency or "").lower())
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"
