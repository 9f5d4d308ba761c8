"""Events, and their signed delivery to registered webhook endpoints.

Two delivery modes:
- "http": a background thread POSTs each event to the endpoint URL, retrying non-2xx answers and
  connection errors after `retry_delays` (short, bounded: this is a test double, not a queue).
- "manual": deliveries wait until a test calls `deliver_pending(send)`, which hands each one to
  `send(url, body, headers)` synchronously, e.g. to route them into Django's test Client.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from .store import API_VERSION, Store

logger = logging.getLogger(__name__)

_delivery_ids = itertools.count(1)


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header value Stripe sends: HMAC-SHA256 of "t.payload"."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def endpoint_accepts(endpoint: dict, event_type: str) -> bool:
    enabled = endpoint["enabled_events"]
    return endpoint["status"] == "enabled" and ("*" in enabled or event_type in enabled)


def snapshot_targets(store: Store, event_type: str) -> list[dict]:
    """Who receives a v1 (snapshot) event: v1 webhook endpoints, and v2 event destinations of
    type webhook_endpoint with `event_payload: snapshot`. Thin (v2) events never go to a v1
    webhook endpoint; see `thin_targets`."""
    endpoints = [e for e in store.all("webhook_endpoint") if endpoint_accepts(e, event_type)]
    destinations = [
        d
        for d in store.all("v2.core.event_destination")
        if d["event_payload"] == "snapshot" and endpoint_accepts(d, event_type)
    ]
    return endpoints + destinations


def thin_targets(store: Store, event_type: str) -> list[dict]:
    # An event destination lists thin event types by name ("*" is not a thin event type).
    return [
        d
        for d in store.all("v2.core.event_destination")
        if d["event_payload"] == "thin"
        and d["status"] == "enabled"
        and event_type in d["enabled_events"]
    ]


def target_url(target: dict) -> str:
    if target["object"] == "webhook_endpoint":
        return target["url"]
    return target["_url"]


@dataclass
class Delivery:
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    secret: str
    payload: bytes
    attempts: int = 0
    due: float = 0.0
    id: int = field(default_factory=lambda: next(_delivery_ids))

    def to_dict(self) -> dict:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "secret": self.secret,
            "payload": self.payload.decode(),
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Delivery:
        return cls(
            data["event_id"],
            data["event_type"],
            data["endpoint_id"],
            data["url"],
            data["secret"],
            data["payload"].encode(),
            attempts=data["attempts"],
            due=time.monotonic(),
        )

    def headers(self) -> dict[str, str]:
        # Signed with wall-clock time, not the emulator clock: receivers check the timestamp
        # against their own clock (stripe-python allows 300 s), and the test clock may be months
        # ahead.
        return {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(self.payload, self.secret, int(time.time())),
        }


Sender = Callable[[str, bytes, dict], object]


class Webhooks:
    def __init__(
        self, store: Store, mode: str = "http", retry_delays=(0.2, 0.5, 1.0), timeout: float = 5.0
    ) -> None:
        self.store = store
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.pending: list[Delivery] = []
        self.attempt_log: list[dict] = []
        self._wake = threading.Condition(store.lock)
        self._stopping = False
        self._worker: threading.Thread | None = None
        # Deliveries a worker took off `pending` and has not recorded yet (guarded by `_wake`).
        self._in_flight = 0
        # Called (under the store lock) after each delivery attempt: the state file is saved.
        self.on_change: Callable[[], None] = lambda: None
        self.mode = "manual"
        self.set_mode(mode)

    # ----- events ------------------------------------------------------------------------------

    def emit(self, event_type: str, obj: dict, previous: dict | None = None, request=None) -> dict:
        """Record an Event (readable at /v1/events/{id}) and queue it for each matching endpoint:
        v1 webhook endpoints and v2 event destinations with `event_payload: snapshot`."""
        store = self.store
        targets = snapshot_targets(store, event_type)
        data: dict = {"object": store.render(obj)}
        if previous:
            data["previous_attributes"] = previous
        event = store.add(
            {
                "id": store.new_id("evt"),
                "object": "event",
                "api_version": API_VERSION,
                "created": store.now(),
                "data": data,
                "livemode": False,
                "pending_webhooks": len(targets),
                "request": request or {"id": None, "idempotency_key": None},
                "type": event_type,
            }
        )
        self._queue(event["id"], event_type, targets, json.dumps(store.render(event), indent=2))
        return event

    def emit_thin(self, event: dict, only: str | None = None) -> None:
        """Queue a v2 thin event (already stored, see resources/v2.py) for each event destination
        with `event_payload: thin` that enables its type (or for destination `only`, a ping).
        The body is the thin notification: no `data`; the receiver fetches
        `GET /v2/core/events/{id}` for it."""
        if only is not None:
            targets = [d for d in self.store.all("v2.core.event_destination") if d["id"] == only]
        else:
            targets = thin_targets(self.store, event["type"])
        notification = {
            key: event[key]
            for key in ("id", "object", "type", "livemode", "created", "context", "related_object")
            if key in event
        }
        if event.get("reason"):
            notification["reason"] = event["reason"]
        self._queue(event["id"], event["type"], targets, json.dumps(notification, indent=2))

    def _queue(self, event_id: str, event_type: str, targets: list[dict], body: str) -> None:
        payload = body.encode()
        for target in targets:
            self.pending.append(
                Delivery(
                    event_id,
                    event_type,
                    target["id"],
                    target_url(target),
                    target["_secret"],
                    payload,
                    due=time.monotonic(),
                )
            )
        if targets:
            self._wake.notify_all()

    # ----- delivery ----------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        if mode not in ("http", "manual"):
            raise ValueError("webhook mode is 'http' or 'manual'")
        self.mode = mode
        if mode == "http" and self._worker is None:
            self._stopping = False
            self._worker = threading.Thread(
                target=self._run, name="stripe-emulator-webhooks", daemon=True
            )
            self._worker.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._worker:
            self._worker.join(timeout=2)
            self._worker = None

    def clear(self) -> None:
        with self._wake:
            self.pending.clear()
            self.attempt_log.clear()

    def _record(self, delivery: Delivery, status: int | None, error: str | None = None) -> bool:
        """Log one attempt; requeue it with backoff unless it succeeded or retries ran out."""
        ok = status is not None and 200 <= status < 300
        delivery.attempts += 1
        self.attempt_log.append(
            {
                "event": delivery.event_id,
                "type": delivery.event_type,
                "endpoint": delivery.endpoint_id,
                "url": delivery.url,
                "attempt": delivery.attempts,
                "status": status,
                "error": error,
            }
        )
        if ok:
            self._settle(delivery)
        elif delivery.attempts <= len(self.retry_delays):
            delivery.due = time.monotonic() + self.retry_delays[delivery.attempts - 1]
            self.pending.append(delivery)
        else:
            logger.warning("giving up on %s to %s", delivery.event_id, delivery.url)
            self._settle(delivery)
        return ok

    def _settle(self, delivery: Delivery) -> None:
        event = self.store.find(delivery.event_id)
        if event and "pending_webhooks" in event:
            event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)

    def dump(self) -> list[dict]:
        return [d.to_dict() for d in self.pending]

    def load(self, deliveries: list[dict]) -> None:
        with self._wake:
            self.pending = [Delivery.from_dict(d) for d in deliveries]
            self._wake.notify_all()

    def deliver_pending(self, send: Sender) -> list[dict]:
        """Hand every queued delivery to `send(url, body, headers)` now (manual mode).

        `send` returns an int status or anything with `status_code`/`status`. Events emitted while
        sending (a handler calling back into the emulator) are delivered in the same call; a failed
        delivery is requeued for a later call, within the retry bound.
        """
        results: list[dict] = []
        tried: set[int] = set()
        while True:
            with self._wake:
                batch = [d for d in self.pending if d.id not in tried]
                for d in batch:
                    self.pending.remove(d)
            if not batch:
                return results
            for delivery in batch:
                tried.add(delivery.id)
                status, error = None, None
                try:
                    response = send(delivery.url, delivery.payload, delivery.headers())
                    status = _status_of(response)
                except Exception as exc:  # a crashing receiver is a failed delivery, as in Stripe
                    error = repr(exc)
                with self._wake:
                    self._record(delivery, status, error)
                    self.on_change()
                results.append(
                    {
                        "event": delivery.event_id,
                        "type": delivery.event_type,
                        "url": delivery.url,
                        "status": status,
                        "error": error,
                    }
                )

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until no delivery is queued (http mode); True if it got there in time."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self.pending or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(min(remaining, 0.05))
        return True

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping:
                    due = [d for d in self.pending if d.due <= time.monotonic()]
                    if self.mode == "http" and due:
                        break
                    self._wake.wait(0.05)
                if self._stopping:
                    return
                delivery = min(due, key=lambda d: d.due)
                self.pending.remove(delivery)
                self._in_flight += 1
            status, error = None, None
            try:
                request = urllib.request.Request(
                    delivery.url, data=delivery.payload, headers=delivery.headers(), method="POST"
                )
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except Exception as exc:  # connection refused, timeout: retried like any failure
                error = repr(exc)
            with self._wake:
                self._record(delivery, status, error)
                self._in_flight -= 1
                self.on_change()
                self._wake.notify_all()


def _status_of(response) -> int:
    if isinstance(response, int):
        return response
    for attribute in ("status_code", "status"):
        value = getattr(response, attribute, None)
        if isinstance(value, int):
            return value
    raise TypeError("send() must return a status code or a response with status_code")
