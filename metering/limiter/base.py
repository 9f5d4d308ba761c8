"""The limiter's interface: one atomic ``hit`` per request, at most one ``settle`` after it.

A backend keeps three kinds of state per account, all under the account's Redis hash tag:

- the rate limiter's theoretical arrival time (GCRA, see docs/architecture.md);
- the units spent this billing period (the quota counter);
- usage counters per minute, per (key, endpoint): units and requests billed, calls refused by
  the rate limit, by the quota and by the spend cap, and errors (admitted calls answered with a
  status that is not billed), drained into ``UsageRollup`` rows by the rollup job.

A call is admitted reserving its endpoint's maximum cost; ``settle`` then keeps the units it
actually cost and gives the rest back, once: the hit's request token names the call in the
backend, and a settle repeated (a retry, a second ``POST /v1/keys/settle``) finds the first
one's record and changes nothing.

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

# How long a backend remembers an admitted call's token (and whether it was settled), from the
# start of its usage minute: until the rollup may drain that minute (the minute's 60 s plus
# metering.services.ROLLUP_GRACE_SECONDS, 120). A settle after that finds the minute sealed or
# the token gone and gives nothing back: the units stay billed, never given back twice.
TOKEN_SECONDS = 180

# The kinds of counter in a minute's usage hash, each named "<kind>:<key id>:<endpoint>".
UNITS = "u"
REQUESTS = "r"
REFUSED_RATE = "l"
REFUSED_QUOTA = "q"
REFUSED_CAP = "c"
ERRORS = "e"
_COUNT_SLOTS = {UNITS: 0, REQUESTS: 1, REFUSED_RATE: 2, REFUSED_QUOTA: 3, REFUSED_CAP: 4, ERRORS: 5}


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
    # The RateLimit-Policy header's value (metering/headers.py): it depends on these figures
    # alone, so it is formatted once per policy, which the hot path keeps per key, not once
    # per response.
    rate_limit_policy: str = field(init=False)

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
        # Draft 11 syntax, the minute then the period (when the quota can refuse a call): see
        # metering/headers.py for what q and w say.
        advertised = [f'"minute";q={self.burst};w={self.burst_window_seconds}']
        if limit is not None:
            period_seconds = int((self.period_end - self.period_start).total_seconds())
            advertised.append(f'"period";q={limit};w={period_seconds}')
        object.__setattr__(self, "rate_limit_policy", ", ".join(advertised))


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
    # Names this admitted call in the backend until it is settled (see ``Reservation``).
    token: str = ""
    # Set once the response went through ``metering.hotpath.settle``.
    settled: bool = False
    given_back: bool = False
    # Units billed once settled (0..cost); None: not settled yet.
    units: int | None = None

    @property
    def admitted(self) -> bool:
        return self.outcome in (Outcome.ADMITTED, Outcome.UNMETERED)

    @property
    def counted(self) -> bool:
        return self.outcome == Outcome.ADMITTED

    @property
    def reservation(self) -> "Reservation":
        return Reservation(
            account_id=self.account_id,
            key_id=self.key_id,
            endpoint=self.endpoint,
            cost=self.cost,
            minute=self.minute,
            token=self.token,
            period_key=self.policy.period_key,
            interval_us=self.policy.interval_us,
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """What ``settle`` needs of an admitted call: where its units were counted and its token.
    Plain data, so a call admitted by one process (``POST /v1/keys/verify``) can be settled by
    another (``POST /v1/keys/settle``)."""

    account_id: int
    key_id: int
    endpoint: str
    # Units reserved when the call was admitted (the endpoint's maximum cost).
    cost: int
    minute: int
    token: str
    # The quota counter's period and the unit interval the rate window was advanced by.
    period_key: int
    interval_us: int


class Settlement(enum.StrEnum):
    # The units past what the call kept were given back now.
    SETTLED = "settled"
    # Settled before: nothing changed; the figures are the first settle's.
    REPEATED = "repeated"
    # The minute was rolled up (or the token forgotten, TOKEN_SECONDS): nothing given back.
    LATE = "late"


@dataclass(frozen=True, slots=True)
class SettleResult:
    settlement: Settlement
    # Units given back (by this settle, or by the first one when REPEATED).
    given_back: int
    # The call was settled as an error (not billable: every unit and its request given back).
    error: bool


@dataclass(frozen=True, slots=True)
class UsageCount:
    """Units and requests of one key on one endpoint in one minute, and the calls refused
    (by the rate limit, the quota, the spend cap) and admitted but answered with an error."""

    key_id: int
    endpoint: str
    units: int
    requests: int
    refused_rate: int = 0
    refused_quota: int = 0
    refused_cap: int = 0
    errors: int = 0


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


def usage_suffix(key_id: int, endpoint: str) -> str:
    """What every counter of one key on one endpoint ends with (the scripts add the kind)."""
    return f"{key_id}:{endpoint}"


def usage_field(kind: str, key_id: int, endpoint: str) -> str:
    """The counter name inside a minute's hash: a kind (``UNITS``, ``REQUESTS``...) first."""
    return f"{kind}:{key_id}:{endpoint}"


def quota_refusal_kind(policy: "Policy") -> str:
    """The counter a quota refusal goes to: the included units on a ``block`` tier, the spend
    cap on a ``bill`` tier with one (an uncapped ``bill`` tier never refuses)."""
    return REFUSED_QUOTA if policy.overage_policy == "block" else REFUSED_CAP


def parse_usage_fields(fields: dict[str, int]) -> list[UsageCount]:
    """Gather a minute's counters back into one count per (key, endpoint)."""
    cells: dict[tuple[int, str], list[int]] = {}
    for name, value in fields.items():
        kind, key_id, endpoint = name.split(":", 2)
        slot = _COUNT_SLOTS.get(kind)
        if slot is None:
            continue
        cell = cells.setdefault((int(key_id), endpoint), [0, 0, 0, 0, 0, 0])
        cell[slot] += int(value)
    return [
        UsageCount(
            key_id=key_id,
            endpoint=endpoint,
            units=units,
            requests=requests,
            refused_rate=refused_rate,
            refused_quota=refused_quota,
            refused_cap=refused_cap,
            errors=errors,
        )
        for (key_id, endpoint), (
            units,
            requests,
            refused_rate,
            refused_quota,
            refused_cap,
            errors,
        ) in sorted(cells.items())
        if units or requests or refused_rate or refused_quota or refused_cap or errors
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
    def settle(
        self,
        reservation: Reservation,
        *,
        units: int,
        error: bool = False,
        now: float | None = None,
    ) -> SettleResult:
        """Keep ``units`` (0..cost) of an admitted call and give the rest back to the rate
        window, the quota and the usage counters, in one atomic step, once. ``error``: the
        outcome is not billable: every unit and the request count go back, and an error is
        counted. A reservation settled before changes nothing (``REPEATED``, the first
        settle's figures); one whose minute was rolled up gives nothing back (``LATE``)."""

    async def hit_async(
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
        """``hit`` for an event loop. A backend that waits on the network overrides it; the
        in-process one answers in microseconds under its lock, so it is called directly."""
        return self.hit(
            account_id=account_id,
            key_id=key_id,
            endpoint=endpoint,
            cost=cost,
            policy=policy,
            seed=seed,
            now=now,
            version=version,
        )

    async def settle_async(
        self,
        reservation: Reservation,
        *,
        units: int,
        error: bool = False,
        now: float | None = None,
    ) -> SettleResult:
        """``settle`` for an event loop (see ``hit_async``)."""
        return self.settle(reservation, units=units, error=error, now=now)

    def give_back(self, decision: Decision, *, now: float | None = None) -> bool:
        """Undo an admitted hit whose outcome is not billable. False when nothing was given
        back: the minute was already rolled up, or the call was settled before."""
        result = self.settle(decision.reservation, units=0, error=True, now=now)
        return result.settlement == Settlement.SETTLED

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
