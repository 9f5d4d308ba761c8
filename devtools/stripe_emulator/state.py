"""The emulated account: state, events and hosted-page URLs shared by every handler."""

from __future__ import annotations

from .faults import Faults
from .store import Store
from .webhooks import Webhooks


class State:
    def __init__(self, webhook_mode: str = "http", retry_delays=(0.2, 0.5, 1.0)) -> None:
        self.store = Store()
        self.webhooks = Webhooks(self.store, mode=webhook_mode, retry_delays=retry_delays)
        self.faults = Faults()
        # Set by the server once bound; hosted pages (checkout, portal, invoices) live there.
        self.base_url = ""
        # The request being handled, for `event.request` (id and idempotency key).
        self.current_request: dict | None = None

    def reset(self) -> None:
        with self.store.lock:
            self.store.reset()
            self.webhooks.clear()
            self.faults.clear()

    def snapshot(self, obj: dict) -> dict:
        return self.store.render(obj)

    def emit(self, event_type: str, obj: dict, before: dict | None = None) -> dict:
        """Emit an event; with `before` (a snapshot), `previous_attributes` lists what changed."""
        previous = None
        if before is not None:
            after = self.snapshot(obj)
            previous = {
                key: before.get(key)
                for key in sorted(set(before) | set(after))
                if before.get(key) != after.get(key)
            }
            if not previous:
                return {}  # nothing changed: Stripe sends no *.updated event
        return self.webhooks.emit(event_type, obj, previous, self.current_request)
