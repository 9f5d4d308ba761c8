"""The test clock: moving time forward closes billing periods and finalizes drafts as they fall
due."""

from __future__ import annotations

from ..state import State
from ..store import Store
from .invoice_items import pending_invoice_items
from .invoices import (
    FINALIZATION_GRACE,
    invoice_attempt,
    invoice_create,
    invoice_finalize,
)
from .items import add_months, subscription_items, subscription_period
from .pricing import is_metered

LIVE_STATUSES = ("active", "past_due", "trialing")


def clock_advance(state: State, to: int) -> None:
    """Move the clock to `to`, doing in time order what falls due on the way: closing billing
    periods (a draft renewal invoice each) and finalizing drafts whose grace hour has passed."""
    store = state.store
    while True:
        due = []
        for sub in store.all("subscription"):
            if sub["status"] in LIVE_STATUSES and subscription_items(state, sub["id"]):
                period_end = subscription_period(state, sub)[1]
                if period_end <= to:
                    due.append((period_end, 0, sub["_seq"], sub))
        for invoice in store.all("invoice"):
            at = invoice["automatically_finalizes_at"]
            if invoice["status"] == "draft" and at is not None and at <= to:
                due.append((at, 1, invoice["_seq"], invoice))
        if not due:
            break
        moment, kind, _, obj = min(due, key=lambda entry: entry[:3])
        _set_clock(store, moment)
        if kind == 0:
            _close_period(state, obj)
        else:
            invoice_finalize(state, obj)
            invoice_attempt(state, obj)
    _set_clock(store, to)


def catch_up(state: State) -> None:
    """Do what real time brought due (a demo left running past a period end or a grace hour)."""
    clock_advance(state, state.store.now())


def _set_clock(store: Store, moment: int) -> None:
    if moment > store.now():
        store.clock.offset += moment - store.now()


def _close_period(state: State, sub: dict) -> None:
    start, end = subscription_period(state, sub)
    grace_end = end + FINALIZATION_GRACE
    if sub["cancel_at_period_end"]:
        if any(
            is_metered(state.store.objects[i["_price_id"]])
            for i in subscription_items(state, sub["id"])
        ) or pending_invoice_items(state, sub["id"]):
            invoice_create(
                state,
                sub,
                "subscription_cycle",
                (start, end),
                licensed_period=None,
                metered_period=(start, end),
                finalize_at=grace_end,
            )
        before = state.snapshot(sub)
        sub.update(status="canceled", ended_at=end)
        state.emit("customer.subscription.deleted", sub, before)
        return
    next_end = add_months(sub["billing_cycle_anchor"], sub["_cycles"] + 1)
    items = subscription_items(state, sub["id"])
    usage_starts = {item["id"]: item["_usage_start"] for item in items}
    before = state.snapshot(sub)
    sub["_cycles"] += 1
    for item in items:
        item.update(current_period_start=end, current_period_end=next_end, _usage_start=end)
    state.emit("customer.subscription.updated", sub, before)
    invoice_create(
        state,
        sub,
        "subscription_cycle",
        (start, end),
        licensed_period=(end, next_end),
        metered_period=(start, end),
        usage_starts=usage_starts,
        finalize_at=grace_end,
    )
