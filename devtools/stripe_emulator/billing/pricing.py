"""Prices: the exact amount of a quantity of a price, and the metered usage it is billed on.

Amounts: each invoice line is computed exactly with Decimal (unit_amount_decimal x units, tier by
tier) and rounded half up to whole cents once, at the line's total; the invoice total is the sum of
its lines.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from ..state import State


def cents(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def price_amount(price: dict, quantity: int) -> Decimal:
    """The exact (unrounded) amount for `quantity` units of `price`."""
    if price["billing_scheme"] == "per_unit":
        return Decimal(price["unit_amount_decimal"] or 0) * quantity
    tiers = price["_tiers"]
    if price["tiers_mode"] == "volume":
        tier = next(t for t in tiers if t["up_to"] is None or quantity <= t["up_to"])
        return _tier_cost(tier, quantity)
    total, lower = Decimal(0), 0
    for tier in tiers:  # graduated: each tier prices the units that fall inside it
        upper = tier["up_to"]
        units = (quantity if upper is None else min(quantity, upper)) - lower
        if units <= 0:
            break
        total += _tier_cost(tier, units)
        if upper is None:
            break
        lower = upper
    return total


def _tier_cost(tier: dict, units: int) -> Decimal:
    unit = Decimal(tier["unit_amount_decimal"] or 0)
    flat = Decimal(tier["flat_amount_decimal"] or 0)
    return unit * units + flat


def is_metered(price: dict) -> bool:
    recurring = price.get("recurring") or {}
    return recurring.get("usage_type") == "metered"


def usage_total(state: State, customer_id: str, meter_id: str, start: int, end: int) -> int:
    """Sum of accepted meter event values for a customer and meter within [start, end)."""
    return sum(
        event["value"]
        for event in state.store.meter_events
        if event["customer"] == customer_id
        and event["meter"] == meter_id
        and start <= event["timestamp"] < end
    )
