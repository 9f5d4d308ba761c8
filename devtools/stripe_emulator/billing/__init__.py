"""Subscriptions, invoices and the test clock: the part of Stripe Billing Meterdesk relies on.

Split by topic; each module's docstring names the Stripe behaviours it reproduces and the
documentation they follow:

- `pricing`: exact amounts of a price (per unit, volume and graduated tiers), rounded once per line;
  the metered usage a line is billed on.
- `items`: subscription items, their calendar-month periods and prices.
- `invoice_items`: pending invoice items (the usage of a metered price that left an item, credits).
- `invoices`: draft invoices, finalization after the grace hour, payment; the preview of the
  upcoming invoice.
- `subscriptions`: creation, flexible-mode price changes and item removal, cancellation.
- `clock`: advancing the test clock, which closes periods and finalizes drafts as they fall due.

Not emulated: licensed-price prorations on price changes (a new licensed price applies from the
next period), discounts, taxes.
"""

from .clock import catch_up, clock_advance
from .invoices import invoice_attempt, invoice_finalize, invoice_lines, invoice_preview
from .items import subscription_items
from .pricing import is_metered, usage_total
from .subscriptions import (
    PRORATION_BEHAVIORS,
    invoice_now_for_update,
    item_change_price,
    item_remove,
    subscription_add_item,
    subscription_cancel,
    subscription_create,
)

__all__ = [
    "PRORATION_BEHAVIORS",
    "catch_up",
    "clock_advance",
    "invoice_attempt",
    "invoice_finalize",
    "invoice_lines",
    "invoice_now_for_update",
    "invoice_preview",
    "is_metered",
    "item_change_price",
    "item_remove",
    "subscription_add_item",
    "subscription_cancel",
    "subscription_create",
    "subscription_items",
    "usage_total",
]
