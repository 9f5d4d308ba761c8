"""What a tier looks like on Stripe: the parameters of its Product and Prices, and whether an
existing Stripe object already matches them. Pure functions, no I/O; billing.services.catalog
does the calls.

Prices are immutable on Stripe, so "matches" decides between keeping a price and replacing it.
Each price carries a deterministic ``lookup_key`` (``meterdesk_<slug>_base`` / ``_metered``) that
moves to the replacement (``transfer_lookup_key``), so the current price of a tier is always found
by its key, whatever our database remembers.
"""

import hashlib
import json
from decimal import Decimal
from typing import Any

from stripe.params import (
    PriceCreateParams,
    PriceCreateParamsTier,
    ProductCreateParams,
    ProductUpdateParams,
)

from billing.models import Tier
from billing.stripe_api import expandable_id

METER_DISPLAY_NAME = "Meterdesk API units"
# Who owns an object on Stripe, so an operator can tell ours apart in the dashboard.
METADATA_TIER_KEY = "meterdesk_tier"


def product_id(tier: Tier) -> str:
    """A deterministic product id: a second sync (or one after our database lost the link) finds
    the product instead of creating another."""
    return f"meterdesk_tier_{tier.slug}"


def product_params(tier: Tier) -> ProductCreateParams:
    return {
        "name": tier.name,
        "description": tier.description,
        "metadata": {METADATA_TIER_KEY: tier.slug},
    }


def product_changes(tier: Tier, product: Any) -> ProductUpdateParams:
    """The fields to update on an existing product; empty when it already matches."""
    changes: ProductUpdateParams = {}
    if product.get("name") != tier.name:
        changes["name"] = tier.name
    if (product.get("description") or "") != tier.description:
        changes["description"] = tier.description  # "" unsets it on Stripe
    if not product.get("active"):
        changes["active"] = True
    if (product.get("metadata") or {}).get(METADATA_TIER_KEY) != tier.slug:
        changes["metadata"] = {METADATA_TIER_KEY: tier.slug}
    return changes


def lookup_key(tier: Tier, role: str) -> str:
    return f"meterdesk_{tier.slug}_{role}"


def decimal_text(value: Decimal | int) -> str:
    """Stripe's ``unit_amount_decimal``: plain notation, no exponent, no trailing zeros."""
    text = format(Decimal(value).normalize(), "f")
    return text if text not in ("-0", "") else "0"


def base_price_params(tier: Tier, product: str) -> PriceCreateParams:
    """The licensed monthly price: the subscription's fixed part, billed in advance."""
    return {
        "currency": tier.currency,
        "product": product,
        "unit_amount": tier.base_price_cents,
        "recurring": {"interval": "month", "usage_type": "licensed"},
        "lookup_key": lookup_key(tier, "base"),
        "nickname": f"{tier.name} monthly",
        "metadata": {METADATA_TIER_KEY: tier.slug, "role": "base"},
    }


def metered_tiers(tier: Tier) -> list[PriceCreateParamsTier]:
    """Graduated tiers: the included units at 0, every unit past them at the overage price.

    A ``block`` tier bills no overage (its calls are refused past the quota), so its last tier
    costs 0: the price still exists so that every subscription has a metered item, the invoice
    shows the period's usage, and a switch between tiers in the customer portal swaps like for
    like.
    """
    overage = tier.overage_unit_price_cents if tier.overage_policy == Tier.OveragePolicy.BILL else 0
    # The SDK types unit_amount_decimal as a Decimal and sends its str(), which can be in
    # exponent notation ("1E-7"); Stripe's decimal strings are plain, so ours is sent as text.
    last: PriceCreateParamsTier = {
        "up_to": "inf",
        "unit_amount_decimal": decimal_text(overage),  # type: ignore[typeddict-item]
    }
    if tier.included_units == 0:
        return [last]
    return [{"up_to": tier.included_units, "unit_amount": 0}, last]


def metered_price_params(tier: Tier, product: str, meter_id: str) -> PriceCreateParams:
    return {
        "currency": tier.currency,
        "product": product,
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": metered_tiers(tier),
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
        "lookup_key": lookup_key(tier, "metered"),
        "nickname": f"{tier.name} usage",
        "metadata": {METADATA_TIER_KEY: tier.slug, "role": "metered"},
    }


def _amount(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _tier_shape(tiers: list[Any]) -> list[tuple[int | None, Decimal, Decimal]]:
    shape = []
    for entry in tiers:
        up_to = entry.get("up_to")
        unit = entry.get("unit_amount_decimal")
        if unit is None:
            unit = entry.get("unit_amount")
        flat = entry.get("flat_amount_decimal")
        if flat is None:
            flat = entry.get("flat_amount")
        shape.append((None if up_to in (None, "inf") else int(up_to), _amount(unit), _amount(flat)))
    return shape


def price_matches(params: PriceCreateParams, price: Any) -> bool:
    """Whether an existing Stripe price bills exactly what ``params`` would create.

    Only what decides the amount counts (currency, product, recurrence, amounts, meter);
    nickname and metadata are cosmetic and never worth a new price.
    """
    recurring = price.get("recurring") or {}
    wanted = params["recurring"]
    if (
        price.get("currency") != params["currency"]
        or expandable_id(price.get("product")) != params["product"]
        or recurring.get("interval") != wanted["interval"]
        or (recurring.get("usage_type") or "licensed") != wanted["usage_type"]
        or (recurring.get("meter") or None) != wanted.get("meter")
        or int(recurring.get("interval_count") or 1) != 1
    ):
        return False
    if "tiers" in params:
        return (
            price.get("billing_scheme") == "tiered"
            and price.get("tiers_mode") == params["tiers_mode"]
            and _tier_shape(price.get("tiers") or []) == _tier_shape(params["tiers"])
        )
    return price.get("billing_scheme") in (None, "per_unit") and _amount(
        price.get("unit_amount")
    ) == Decimal(params["unit_amount"])


def idempotency_key(kind: str, *parts: Any, attempt: int = 0) -> str:
    """A key that is the same for the same request in the same situation (so a retry after a
    crash replays it) and differs as soon as anything in it differs (so a later, deliberate
    change is never swallowed by Stripe's 24-hour replay).

    ``attempt`` numbers the keys of one request's chain: attempt n+1 is used only once Stripe
    replays a server error for attempt n (``billing.stripe_idempotency.create_once``)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    key = f"meterdesk-{kind}-{digest[:32]}"
    return f"{key}-{attempt}" if attempt else key
