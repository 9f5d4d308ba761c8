"""The limiter's interface: one atomic ``hit`` per request, one ``give_back`` per non-billable one.

A backend keeps three kinds of state per account, all under the account's Redis hash tag:

- the rate limiter's theoretical arrival time (GCRA, see docs/architecture.md);
- the units spent this billing period (the quota counter);
- usage counters per minute: units and requests per (key, endpoint), drained into
  ``UsageRollup`` rows by the rollup job.

Every method takes and returns plain data (ids, ints, strings), so the same tests run against
both backends and nothing here touches the database.
"""

import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

# The rate limit is stated per minute; the window is the span one full burst takes to refill.
RATE_WINDOW_SECONDS = 60
MICROS = 1_000_000

# What a call is billed for unless its endpoint says otherwise: any 2xx.
BILLABLE_STATUSES = range(200, 300)


class LimiterUnavailable(Exception):
    """The backend did not answer in time (Redis down, slow or unreachable)."""


class Outcome(enum.StrEnum):
    ADMITTED = "admitted"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    # The period's quota counter is missing (new period, or Redis lost it): call again with a
    # seed read from the database. Nothing was counted.
    NEEDS_SEED = "needs_seed"
    # The backend was unreachable and METERING_FAIL_MODE is "open": admitted, not counted.
    UNMETERED = "unmetered"
    # The account changed (a key revoked, a tier moved, a suspension) after this process cached
    # it: re-read it and ask again. Nothing was counted.
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Policy:
    """What an account may spend, in units: the rate limit and the period's quota.

    Built once per cached API key (see ``metering.hotpath.policy_for``); the figures every
    request needs are worked out here, once.
    """

    rate_per_minute: int
    burst: int
    quota: int
    overage_policy: str
    # Units past the quota the spend cap pays for; None: no cap.
    overage_cap: int | None
    period_start: datetime
    period_end: datetime
    # Microseconds one unit takes to come back. Rounded up: a rounding error may make the
    # limit a hair stricter, never looser.
    interval_us: int = field(init=False)
    # Seconds a fully spent burst takes to refill: the ``w`` of the rate policy.
    burst_window_seconds: int = field(init=False)
    # Most units the period may count before calls are refused; None: never refused.
    quota_limit: int | None = field(init=False)
    # The period's start and end in epoch seconds (the start names the quota counter).
    period_key: int = field(init=False)
    period_end_epoch: float = field(init=False)
    # The first usage minute of the period: its start rounded UP to a whole minute. Usage
    # admitted under this period is never counted in an earlier minute, so the minute in which
    # a period (or a subscription) starts holds only the previous period's usage, and every
    # reader can split periods at their exact start: rollups are per minute, periods are not.
    first_minute: int = field(init=False)

    def __post_init__(self):
        interval = math.ceil(RATE_WINDOW_SECONDS * MICROS / self.rate_per_minute)
        if self.overage_policy == "block":
            limit = self.quota
        elif self.overage_cap is None:
            limit = None
        else:
            limit = self.quota + self.overage_cap
        object.__setattr__(self, "interval_us", interval)
        object.__setattr__(self, "burst_window_seconds", math.ceil(self.burst * interval / MICROS))
        object.__setattr__(self, "quota_limit", limit)
        object.__setattr__(self, "period_key", int(self.period_start.timestamp()))
        object.__setattr__(self, "period_end_epoch", self.period_end.timestamp())
        object.__setattr__(self, "first_minute", ceil_minute(self.period_start.timestamp()))


@dataclass(slots=True)
class Decision:
    """What the limiter said about one request; kept on the request until it is settled."""

    outcome: Outcome
    account_id: int
    key_id: int
    endpoint: str
    cost: int
    policy: Policy
    # Units that could be spent right now under the rate limit (after this request).
    rate_remaining: int = 0
    # Seconds until the rate limit is back to a full burst.
    rate_reset: float = 0.0
    # Seconds to wait before this request could be admitted; 0 when admitted.
    retry_after: float = 0.0
    # Units counted this period, this request included when admitted.
    quota_used: int = 0
    # The backend's clock when it decided, in seconds since the epoch.
    now: float = 0.0
    # Start of the usage minute this request was counted in (epoch seconds).
    minute: int = 0
    # Status codes the view bills; anything else is given back.
    billable_statuses: Iterable[int] = BILLABLE_STATUSES
    # Set once the response went through ``metering.hotpath.settle``.
    settled: bool = False
    given_back: bool = False

    @property
    def admitted(self) -> bool:
        return self.outcome in (Outcome.ADMITTED, Outcome.UNMETERED)

    @property
    def counted(self) -> bool:
        return self.outcome == Outcome.ADMITTED


@dataclass(frozen=True, slots=True)
class UsageCount:
    """Units and requests of one key on one endpoint in one minute."""

    key_id: int
    endpoint: str
    units: int
    requests: int


@dataclass(frozen=True, slots=True, order=True)
class Bucket:
    """One account's usage counters for one minute: the unit the rollup drains."""

    account_id: int
    minute: int

    @property
    def name(self) -> str:
        """The ``RollupBatch.bucket`` that records this bucket as applied."""
        return f"acct:{self.account_id}:{self.minute}"


def minute_of(epoch_seconds: float) -> int:
    return int(epoch_seconds // 60) * 60


def ceil_minute(epoch_seconds: float) -> int:
    return -int(-epoch_seconds // 60) * 60


def usage_minute(epoch_seconds: float, policy: "Policy") -> int:
    """The minute a request admitted at ``epoch_seconds`` under ``policy`` is counted in."""
    return max(minute_of(epoch_seconds), policy.first_minute)


def usage_field(kind: str, key_id: int, endpoint: str) -> str:
    """The counter name inside a minute's hash: ``u`` for units, ``r`` for requests."""
    return f"{kind}:{key_id}:{endpoint}"


def parse_usage_fields(fields: dict[str, int]) -> list[UsageCount]:
    """Pair a minute's ``u:`` and ``r:`` counters back into one count per (key, endpoint)."""
    pairs: dict[tuple[int, str], list[int]] = {}
    for name, value in fields.items():
        kind, key_id, endpoint = name.split(":", 2)
        slot = pairs.setdefault((int(key_id), endpoint), [0, 0])
        slot[0 if kind == "u" else 1] += int(value)
    return [
        UsageCount(key_id=key_id, endpoint=endpoint, units=units, requests=requests)
        for (key_id, endpoint), (units, requests) in sorted(pairs.items())
        if units or requests
    ]


class Limiter(ABC):
    """Rate limit + quota + usage counters. Implementations must make ``hit`` and
    ``give_back`` atomic: no interleaving of concurrent requests may admit more than the
    policy allows."""

    @abstractmethod
    def hit(
        self,
        *,
        account_id: int,
        key_id: int,
        endpoint: str,
        cost: int,
        policy: Policy,
        seed: int | None = None,
        now: float | None = None,
        version: int | None = None,
    ) -> Decision:
        """Check the rate limit and the quota and, when both allow, count ``cost`` units and
        one request, all at once. ``seed`` initialises a missing quota counter; ``now``
        (epoch seconds) overrides the backend's clock, for tests. ``version`` is the account's
        ``cache_version`` the caller's principal was read at: a backend shared by several
        processes answers ``STALE`` when a newer one was published (``publish_version``)."""

    @abstractmethod
    def give_back(self, decision: Decision, *, now: float | None = None) -> bool:
        """Undo an admitted hit: rate window, quota and usage counters. False when the
        minute was already rolled up (the units stay billed; the caller logs it)."""

    @abstractmethod
    def pending_buckets(self, *, before: int) -> list[Bucket]:
        """Buckets holding counters for minutes that started before ``before`` (epoch s)."""

    @abstractmethod
    def drain(self, buckets: list[Bucket]) -> dict[Bucket, list[UsageCount]]:
        """Seal each bucket against further changes and return its counters. Draining a bucket
        again before ``discard`` returns the same counters (a crashed rollup re-runs)."""

    @abstractmethod
    def discard(self, buckets: list[Bucket]) -> None:
        """Forget drained buckets, once their counters are safely in the database."""

    @abstractmethod
    def live_usage(self, account_id: int) -> dict[int, list[UsageCount]]:
        """Counters not yet discarded for one account, by minute (live or drained)."""

    @abstractmethod
    def quota_used(self, account_id: int, policy: Policy) -> int | None:
        """Units the quota counter holds for the policy's period; None: not seeded."""

    def publish_version(self, account_id: int, version: int, *, ttl: int) -> None:  # noqa: B027
        """Tell every process sharing this backend that the account changed, so a principal
        read at an older version is refused as ``STALE`` for ``ttl`` seconds (after that no
        process still holds one). A backend serving one process has nothing to tell."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every counter (tests and the benchmarks only)."""

    def close(self) -> None:  # noqa: B027 - a no-op is right for backends holding no connection
        """Release connections; the limiter is not used afterwards."""
