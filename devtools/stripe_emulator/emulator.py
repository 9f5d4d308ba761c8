"""`Emulator`: run the server in a thread and drive it from Python."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from . import control
from .server import EmulatorServer
from .state import State
from .webhooks import Sender

DEFAULT_PORT = 12111
STATE_FILE_ENV = "STRIPE_EMULATOR_STATE_FILE"


def default_port() -> int:
    return int(os.environ.get("STRIPE_EMULATOR_PORT", DEFAULT_PORT))


def default_state_file() -> str | None:
    """`STRIPE_EMULATOR_STATE_FILE`, if set (the CLI's default for --state-file)."""
    return os.environ.get(STATE_FILE_ENV) or None


class Emulator:
    """A Stripe emulator on `host:port` (port 0 picks a free one).

    >>> emu = Emulator(port=0).start()
    >>> stripe.StripeClient("sk_test_x", base_addresses={"api": emu.url})

    With `state_file`, the whole state is loaded from that JSON file at start (if it exists) and
    saved to it after every change; without (the default), it lives in memory only.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        webhook_mode: str = "http",
        retry_delays=(0.2, 0.5, 1.0),
        state_file: str | Path | None = None,
    ) -> None:
        self.host = host
        self.port = default_port() if port is None else port
        self.state = State(
            webhook_mode=webhook_mode, retry_delays=retry_delays, state_file=state_file
        )
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Emulator:
        self._server = EmulatorServer((self.host, self.port), self.state)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="stripe-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server = EmulatorServer((self.host, self.port), self.state)
        self.port = self._server.server_address[1]
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self.state.webhooks.stop()

    def stop(self) -> None:
        self.state.webhooks.stop()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ----- controls ----------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.state.store.now()

    def reset(self) -> None:
        control.reset(self.state)

    def advance_clock(self, seconds: int | None = None, *, to: int | None = None) -> int:
        return control.advance_clock(self.state, seconds, to)["now"]

    def set_card_declines(self, customer_id: str, decline: bool = True) -> None:
        control.set_card_declines(self.state, customer_id, decline)

    def inject_fault(self, path_prefix: str, **options):
        """Fail requests whose path starts with `path_prefix`; see `faults.Fault` for options:
        status (500/429/...), count=N or fraction=0.3 (+ seed), delay=seconds, apply=bool."""
        return self.state.faults.add(path_prefix=path_prefix, **options)

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def request_count(self, path_prefix: str = "", method: str | None = None) -> int:
        return control.request_count(self.state, path_prefix, method)

    def meter_event_total(self, customer_id: str, meter: str, start=None, end=None) -> int:
        return control.meter_event_total(self.state, customer_id, meter, start, end)

    def stats(self) -> dict:
        return control.stats(self.state)

    def save_portal_defaults(self, **params) -> dict:
        """Save the customer portal's default configuration, as the Dashboard does (the API
        cannot create a default one). `params` as for POST /v1/billing_portal/configurations:
        features={...}, business_profile={...}, default_return_url=..."""
        return control.save_portal_defaults(self.state, params)

    def thin_events(self, type: str | None = None) -> list[dict]:
        """v2 thin events (`GET /v2/core/events/{id}` shapes), newest first."""
        with self.state.store.lock:
            store = self.state.store
            return [
                store.render(e)
                for e in store.all("v2.core.event")
                if type is None or e["type"] == type
            ]

    # ----- webhooks ----------------------------------------------------------------------------

    def set_webhook_mode(self, mode: str) -> None:
        self.state.webhooks.set_mode(mode)

    def deliver_pending(self, send: Sender) -> list[dict]:
        return self.state.webhooks.deliver_pending(send)

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        return self.state.webhooks.wait_idle(timeout)

    def events(self, type: str | None = None) -> list[dict]:
        with self.state.store.lock:
            store = self.state.store
            return [
                store.render(e)
                for e in reversed(store.all("event"))
                if type is None or e["type"] == type
            ]

    def webhook_attempts(self) -> list[dict]:
        return list(self.state.webhooks.attempt_log)
