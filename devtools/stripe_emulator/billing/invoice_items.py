"""Invoice items: amounts billed to a subscription outside its regular lines (the usage of a
metered price that left an item, proration credits), pending until its next invoice picks them up.
"""

from __future__ import annotations

from ..state import State
from .pricing import is_metered


def invoice_item_create(
    state: State,
    sub: dict,
    item: dict,
    price: dict,
    quantity: int,
    amount: int,
    period: tuple[int, int],
    proration: bool = False,
) -> dict:
    """A pending invoice item for a subscription, picked up by its next invoice."""
    store = state.store
    product = store.objects[price["product"]]
    invoice_item = store.add(
        {
            "id": store.new_id("ii"),
            "object": "invoiceitem",
            "amount": amount,
            "currency": price["currency"],
            "customer": sub["customer"],
            "date": store.now(),
            "description": f"{quantity} x {product['name']}"
            + (" (usage)" if is_metered(price) else " (unused time)"),
            "discountable": not proration,
            "discounts": [],
            "invoice": None,
            "livemode": False,
            "metadata": {},
            "net_amount": amount,
            "parent": {
                "subscription_details": {
                    "subscription": sub["id"],
                    "subscription_item": item["id"],
                },
                "type": "subscription_details",
            },
            "period": {"end": period[1], "start": period[0]},
            "pricing": {
                "price_details": {"price": price["id"], "product": product["id"]},
                "type": "price_details",
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
            "proration": proration,
            "proration_details": {"debit_amount": None, "discount_amounts": []},
            "quantity": quantity,
            "tax_rates": [],
            "test_clock": None,
        }
    )
    state.emit("invoiceitem.created", invoice_item)
    return invoice_item


def pending_invoice_items(state: State, subscription_id: str) -> list[dict]:
    return [
        ii
        for ii in reversed(state.store.all("invoiceitem"))
        if ii["invoice"] is None
        and ii["parent"]["subscription_details"]["subscription"] == subscription_id
    ]
