"""State of one emulated Stripe account, plus the rendering of objects for responses.

Objects are kept in their API shape (ids for references), as plain JSON data, so a response is a
deep copy and the whole state can be saved to a JSON file (`dump`/`load`). Keys that start with
"_" are private: hidden from responses, or, for "includable" fields such as a price's `tiers`,
shown only when the caller expands them (`expand[]=tiers` shows `_tiers` as `tiers`).

A field whose stored value is `LAZY` is computed when rendered (a subscription's `items`, an
invoice's `lines`) by the function registered for it with `@lazy_field(object, name)`, so it
always shows the current state and the stored object stays plain data.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import string
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from .errors import StripeError, resource_missing

API_VERSION = "2026-05-27.dahlia"
STATE_FORMAT = 1

_ALPHABET = string.ascii_letters + string.digits

# Which `object` a prefix belongs to, for error messages and expansion.
OBJECT_NAMES = {
    "cus": "customer",
    "prod": "product",
    "price": "price",
    "mtr": "billing.meter",
    "cs": "checkout.session",
    "bps": "billing_portal.session",
    "bpc": "billing_portal.configuration",
    "sub": "subscription",
    "si": "subscription_item",
    "in": "invoice",
    "ii": "invoiceitem",
    "il": "line_item",
    "evt": "event",
    "we": "webhook_endpoint",
    "pm": "payment_method",
    "ed": "v2.core.event_destination",
}

LAZY = "__lazy__"
LAZY_FIELDS: dict[tuple[str, str], Callable[[Store, dict], object]] = {}


def lazy_field(kind: str, name: str):
    """Register how `name` of a `kind` object is computed when rendered (its stored value is
    `LAZY`)."""

    def register(function):
        LAZY_FIELDS[(kind, name)] = function
        return function

    return register


class Clock:
    """Real time plus an offset that tests move forward (never back) to close billing periods."""

    def __init__(self) -> None:
        self.offset = 0

    def now(self) -> int:
        return int(time.time()) + self.offset

    def advance(self, seconds: int) -> int:
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        self.offset += seconds
        return self.now()


class Store:
    def __init__(self) -> None:
        # One lock for all state: requests are serialised, which keeps every handler simple and is
        # plenty fast for tests and a demo.
        self.lock = threading.RLock()
        self.clock = Clock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.clock.offset = 0
            self.objects: dict[str, dict] = {}
            self.order: dict[str, list[str]] = {}
            self.sequence = 0
            self.meter_events: list[dict] = []
            self.meter_event_errors: list[dict] = []
            self.identifiers: dict[str, int] = {}
            self.declining_customers: set[str] = set()
            # (api key, Idempotency-Key) -> saved answer (see server.py)
            self.idempotent_results: dict[tuple[str, str], dict] = {}
            self.in_flight: set[tuple[str, str]] = set()
            self.request_counts: Counter[str] = Counter()

    def now(self) -> int:
        return self.clock.now()

    def new_id(self, prefix: str, length: int = 24) -> str:
        body = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        test = "test_" if prefix in ("cs", "bps", "ed") else ""
        return f"{prefix}_{test}{body}"

    def add(self, obj: dict) -> dict:
        self.sequence += 1
        obj["_seq"] = self.sequence
        self.objects[obj["id"]] = obj
        self.order.setdefault(obj["object"], []).append(obj["id"])
        return obj

    def remove(self, object_id: str) -> None:
        obj = self.objects.pop(object_id)
        self.order[obj["object"]].remove(object_id)

    def get(self, object_id, kind: str, param: str = "id") -> dict:
        obj = self.objects.get(object_id) if isinstance(object_id, str) else None
        if obj is None or obj["object"] != kind:
            raise resource_missing(kind.split(".")[-1], str(object_id), param)
        return obj

    def find(self, object_id, kind: str | None = None) -> dict | None:
        obj = self.objects.get(object_id) if isinstance(object_id, str) else None
        if obj is not None and kind is not None and obj["object"] != kind:
            return None
        return obj

    def all(self, kind: str) -> list[dict]:
        """Objects of one kind, newest first (Stripe's list order)."""
        return [self.objects[i] for i in reversed(self.order.get(kind, []))]

    # ----- rendering -------------------------------------------------------------------------

    def render(self, obj: dict, expand=()) -> dict:
        rendered = self._public(obj)
        for path in expand or ():
            self._expand(rendered, obj, path.split("."))
        return rendered

    def _value(self, obj: dict, key: str, value):
        if isinstance(value, str) and value == LAZY:
            return LAZY_FIELDS[(obj["object"], key.lstrip("_"))](self, obj)
        return copy.deepcopy(value)

    def _public(self, obj: dict) -> dict:
        return {
            key: self._value(obj, key, value)
            for key, value in obj.items()
            if not key.startswith("_")
        }

    def _expand(self, rendered, source, parts: list[str]) -> None:
        if isinstance(rendered, list):
            for index, item in enumerate(rendered):
                self._expand(item, source[index] if isinstance(source, list) else None, parts)
            return
        if not isinstance(rendered, dict) or not parts:
            return
        head, rest = parts[0], parts[1:]
        if head == "data" and rendered.get("object") == "list":
            self._expand(rendered["data"], None, rest)
            return
        hidden = f"_{head}"
        if head not in rendered and isinstance(source, dict) and hidden in source:
            rendered[head] = self._value(source, hidden, source[hidden])
        value = rendered.get(head)
        if isinstance(value, str) and value in self.objects:
            target = self.objects[value]
            rendered[head] = self._public(target)
            self._expand(rendered[head], target, rest)
        elif isinstance(value, (dict, list)):
            self._expand(value, None, rest)
        # Anything else (null, unknown field) is left as is: leniency towards clients that ask
        # to expand fields this emulator does not model, such as dj-stripe's `default_source`.

    # ----- lists -----------------------------------------------------------------------------

    def page(self, items: list[dict], params: dict, url: str, expand=()) -> dict:
        """Cursor pagination over newest-first items, as Stripe's list endpoints do."""
        from .params import to_int

        limit = to_int(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise StripeError(
                "Invalid limit: must be between 1 and 100", param="limit", replayable=False
            )
        ids = [item["id"] for item in items]
        after, before = params.get("starting_after"), params.get("ending_before")
        if after:
            if after not in ids:
                raise resource_missing("object", after, "starting_after")
            start = ids.index(after) + 1
            chosen = items[start : start + limit]
            has_more = start + limit < len(items)
        elif before:
            if before not in ids:
                raise resource_missing("object", before, "ending_before")
            end = ids.index(before)
            chosen = items[max(0, end - limit) : end]
            has_more = end - limit > 0
        else:
            chosen = items[:limit]
            has_more = limit < len(items)
        item_expand = [p[len("data.") :] for p in expand or () if p.startswith("data.")]
        return {
            "object": "list",
            "data": [self.render(item, item_expand) for item in chosen],
            "has_more": has_more,
            "url": url,
        }

    def embedded_list(self, items: list[dict], url: str) -> dict:
        """A sub-list inside an object (`subscription.items`); Stripe embeds the first page."""
        return {
            "object": "list",
            "data": [self.render(item) for item in items[:10]],
            "has_more": len(items) > 10,
            "total_count": len(items),
            "url": url,
        }

    # ----- snapshots and the state file --------------------------------------------------------

    def dump(self) -> dict:
        """The whole account as JSON-ready data (every object is plain data; see LAZY)."""
        with self.lock:
            return {
                "format": STATE_FORMAT,
                "api_version": API_VERSION,
                "clock_offset": self.clock.offset,
                "sequence": self.sequence,
                "objects": [self.objects[i] for kind in self.order for i in self.order[kind]],
                "meter_events": self.meter_events,
                "meter_event_errors": self.meter_event_errors,
                "identifiers": self.identifiers,
                "declining_customers": sorted(self.declining_customers),
                "idempotent_results": [
                    {"api_key": api_key, "key": key, **saved}
                    for (api_key, key), saved in self.idempotent_results.items()
                ],
                "request_counts": dict(self.request_counts),
            }

    def load(self, data: dict) -> None:
        """Replace the state with `data` from `dump()` (a deep copy of it)."""
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown emulator state format {data.get('format')!r}")
        data = copy.deepcopy(data)
        with self.lock:
            self.reset()
            self.clock.offset = int(data["clock_offset"])
            for obj in sorted(data["objects"], key=lambda o: o["_seq"]):
                self.objects[obj["id"]] = obj
                self.order.setdefault(obj["object"], []).append(obj["id"])
            self.sequence = int(data["sequence"])
            self.meter_events = data["meter_events"]
            self.meter_event_errors = data["meter_event_errors"]
            self.identifiers = data["identifiers"]
            self.declining_customers = set(data["declining_customers"])
            self.idempotent_results = {
                (saved.pop("api_key"), saved.pop("key")): saved
                for saved in data["idempotent_results"]
            }
            self.request_counts = Counter(data["request_counts"])

    def snapshot(self) -> dict:
        """An in-memory copy to `restore()`: a request that fails after it began executing
        (an injected 500) leaves nothing behind."""
        return copy.deepcopy(self.dump())

    def restore(self, snapshot: dict) -> None:
        counts, in_flight = Counter(self.request_counts), set(self.in_flight)
        self.load(snapshot)
        # The failed request was still received, and the others in flight still are.
        self.request_counts, self.in_flight = counts, in_flight


def write_json_atomically(path: Path, data: dict) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename, so a
    crash never leaves a half-written state file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
