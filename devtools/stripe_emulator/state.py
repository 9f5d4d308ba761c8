"""The emulated account: state, events and hosted-page URLs shared by every handler.

With a state file the whole account (objects, meter events, the idempotency cache, queued
webhooks, the clock's offset) is loaded from it at start and saved to it, atomically, after every
request that changes something; without one (the default, and in tests) it lives in memory only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .faults import Faults
from .store import Store, write_json_atomically
from .webhooks import Webhooks

logger = logging.getLogger(__name__)


class State:
    def __init__(
        self,
        webhook_mode: str = "http",
        retry_delays=(0.2, 0.5, 1.0),
        state_file: str | Path | None = None,
    ) -> None:
        self.store = Store()
        self.webhooks = Webhooks(self.store, mode=webhook_mode, retry_delays=retry_delays)
        self.faults = Faults()
        # Set by the server once bound; hosted pages (checkout, portal, invoices) live there.
        self.base_url = ""
        # The request being handled, for `event.request` (id and idempotency key).
        self.current_request: dict | None = None
        self.state_file = Path(state_file) if state_file else None
        self.webhooks.on_change = self.persist
        if self.state_file is not None and self.state_file.exists():
            self.load_file()

    def reset(self) -> None:
        with self.store.lock:
            self.store.reset()
            self.webhooks.clear()
            self.faults.clear()
            self.persist()

    # ----- the state file ------------------------------------------------------------------------

    def dump(self) -> dict:
        with self.store.lock:
            return {**self.store.dump(), "pending_webhooks": self.webhooks.dump()}

    def load(self, data: dict) -> None:
        with self.store.lock:
            self.store.load(data)
            self.webhooks.load(data.get("pending_webhooks", []))

    def load_file(self) -> None:
        assert self.state_file is not None
        self.load(json.loads(self.state_file.read_text(encoding="utf-8")))
        logger.info("Stripe emulator state loaded from %s", self.state_file)

    def persist(self) -> None:
        """Save the whole state to the state file, if there is one (atomically)."""
        if self.state_file is None:
            return
        with self.store.lock:
            write_json_atomically(self.state_file, self.dump())

    # ----- events --------------------------------------------------------------------------------

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
