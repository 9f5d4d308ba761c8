"""Fault injection: make chosen requests fail or hang, to prove clients neither lose nor double
count anything. Rules match a path prefix; each fires for its next `count` requests, or for a
`fraction` of them drawn from a seeded RNG so a flaky run can be replayed.

Where a fault strikes follows Stripe's layers (see server.py):
- a 4xx status (429...) comes from in front of the idempotency layer, like Stripe's rate limiter:
  nothing is saved under the request's Idempotency-Key, a retry with the same key runs anew;
- a 5xx status is a failure once the endpoint began executing: with an Idempotency-Key, Stripe
  saves that 500 and replays it to every retry with the same key for 24 hours. `apply=False`
  (the default) rolls back whatever the request did; `apply=True` keeps it (the work was done,
  the answer was lost in a 500). A request that fails parameter validation still gets its 400;
- a `delay` without `apply` is a request lost before it reached Stripe (the client times out);
  with `apply` it is processed (and its answer saved) after the delay.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class Fault:
    path_prefix: str
    status: int | None = 500
    count: int | None = 1
    fraction: float | None = None
    delay: float = 0.0
    # For a delay: whether the request is still processed (a real timeout leaves the client
    # unsure; the server may well have recorded it). For a plain error status it is never applied.
    apply: bool = False
    retry_after: int = 1
    # The Stripe-Should-Retry header; None: "false" for a 5xx saved under an Idempotency-Key
    # (a retry with that key only replays it), "true" otherwise.
    should_retry: bool | None = None
    method: str | None = None
    seed: int | None = None
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self.rng = random.Random(self.seed)
        if self.fraction is not None:
            self.count = None

    def describe(self) -> dict:
        return {
            "path_prefix": self.path_prefix,
            "status": self.status,
            "count": self.count,
            "fraction": self.fraction,
            "delay": self.delay,
            "apply": self.apply,
            "method": self.method,
            "fired": self.fired,
        }


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[Fault] = []

    def add(self, **options) -> Fault:
        fault = Fault(**options)
        with self._lock:
            self.rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The rule that fires for this request, if any (consuming one of its count)."""
        with self._lock:
            for rule in self.rules:
                if not path.startswith(rule.path_prefix):
                    continue
                if rule.method and rule.method.upper() != method:
                    continue
                if rule.fraction is not None:
                    if rule.rng.random() >= rule.fraction:
                        continue
                elif rule.count is not None:
                    if rule.count <= 0:
                        continue
                    rule.count -= 1
                rule.fired += 1
                return rule
        return None
