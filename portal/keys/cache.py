"""Resolving an API key to its ``ApiPrincipal``, cached in-process, and invalidating that cache.

A warm request runs no SQL: the principal is kept per process for ``API_KEY_CACHE_SECONDS``,
keyed by the key's public prefix, next to the SHA-256 of its secret, which every request
compares in constant time. Keys that matched but are revoked or expired are cached as refusals
too, so a client still hammering with a dead key costs no query either. Unknown prefixes are
not cached (they would let anyone fill the memory); they cost one indexed lookup.

Invalidation: ``portal.signals.account_changed_send(account_id)`` bumps
``Account.cache_version`` and sends ``account_changed``; the receiver here drops this process's
entries for the account at once, and again when the transaction commits (a request that read the
old row in between cannot keep it). Other processes are told through the limiter's Redis
(``metering.receivers``), or drop their copy when its TTL runs out: a revoked key stops working
within ``API_KEY_CACHE_SECONDS`` (5 s by default) on every process. Expiry needs no
invalidation: a cached key is refused from the instant its ``expires_at`` passes (the end of a
roll's grace period), whatever the TTL.
"""

import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from portal.keys.format import split_key
from portal.models import ApiKey
from portal.principal import ApiPrincipal
from portal.selectors import api_key_for_prefix, api_principal_build
from portal.signals import account_changed

logger = logging.getLogger(__name__)


class KeyRejected(Exception):
    """Why a presented key does not authenticate; ``reason`` is shown to the client."""

    DETAILS = {
        "missing": "No API key was sent; use 'Authorization: Bearer <key>' or 'X-API-Key'.",
        "malformed": "The API key is not in the expected format (mdk_live_... or mdk_test_...).",
        "unknown": "The API key is not valid.",
        "expired": "The API key has expired; create a new one on the API keys page.",
        "revoked": "The API key was revoked; create a new one on the API keys page.",
    }

    def __init__(self, reason: str):
        super().__init__(self.DETAILS[reason])
        self.reason = reason
        self.detail = self.DETAILS[reason]


@dataclass(frozen=True, slots=True)
class _Entry:
    secret_hash: str
    account_id: int
    # None when the key is refused; then ``refusal`` says why ("revoked" or "expired").
    principal: ApiPrincipal | None
    refusal: str | None
    # On the cache's monotonic clock.
    fresh_until: float


class KeyCache:
    """One process's resolved keys. Thread-safe: writes take the lock; reads are a single
    ``dict.get``, atomic in CPython, so the hot path never waits on a writer."""

    def __init__(
        self,
        *,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ):
        # None: follow settings.API_KEY_CACHE_SECONDS as it is when asked (tests change it).
        self._ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        # Bumped by every invalidation; a load that started before one is not stored.
        self._epoch = 0

    @property
    def ttl(self) -> float:
        return settings.API_KEY_CACHE_SECONDS if self._ttl is None else self._ttl

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, raw_key: str, *, now: datetime | None = None) -> ApiPrincipal:
        """The principal for a presented key, or ``KeyRejected``. No SQL when warm."""
        parts = split_key(raw_key)
        if parts is None:
            raise KeyRejected("malformed")
        prefix, secret = parts
        secret_hash = ApiKey.hash_secret(secret)
        now = now or timezone.now()
        cached = self._cached(prefix, secret_hash, now)
        if cached is not None:
            return cached

        epoch = self._epoch
        key = api_key_for_prefix(prefix)
        if key is None or not key.matches(secret):
            raise KeyRejected("unknown")
        if key.revoked_at is not None:
            self._store(prefix, secret_hash, key.account_id, None, "revoked", epoch)
            raise KeyRejected("revoked")
        if not key.is_active(now):
            self._store(prefix, secret_hash, key.account_id, None, "expired", epoch)
            raise KeyRejected("expired")
        principal = api_principal_build(key, now=now)
        self._store(prefix, secret_hash, key.account_id, principal, None, epoch)
        return principal

    def resolve_cached(self, raw_key: str, *, now: datetime | None = None) -> ApiPrincipal | None:
        """``resolve`` without the database: the principal (or ``KeyRejected``) when this process
        holds the key fresh, None when only ``resolve`` can tell. The async gateway asks this
        first and sends only the misses to a thread (``sync_to_async(resolve)``)."""
        parts = split_key(raw_key)
        if parts is None:
            raise KeyRejected("malformed")
        prefix, secret = parts
        return self._cached(prefix, ApiKey.hash_secret(secret), now or timezone.now())

    def _cached(self, prefix: str, secret_hash: str, now: datetime) -> ApiPrincipal | None:
        entry = self._entries.get(prefix)
        if entry is None or entry.fresh_until <= self._clock():
            return None
        if not hmac.compare_digest(entry.secret_hash, secret_hash):
            raise KeyRejected("unknown")
        if entry.principal is None:
            raise KeyRejected(entry.refusal or "unknown")
        principal = entry.principal
        expires_at = principal.key_expires_at
        if expires_at is not None and expires_at <= now:
            raise KeyRejected("expired")
        # The quota period rolled over while cached (None): read the new period's credits.
        return principal if now < principal.period_end else None

    def _store(
        self,
        prefix: str,
        secret_hash: str,
        account_id: int,
        principal: ApiPrincipal | None,
        refusal: str | None,
        epoch: int,
    ) -> None:
        ttl = self.ttl
        if ttl <= 0:
            return
        entry = _Entry(secret_hash, account_id, principal, refusal, self._clock() + ttl)
        with self._lock:
            if epoch != self._epoch:
                # Invalidated while this request read the database: what it read may be stale.
                return
            if len(self._entries) >= self._max_entries:
                self._prune()
            self._entries[prefix] = entry

    def _prune(self) -> None:
        """Drop stale entries; if the cache is still full, the oldest half (dicts keep order)."""
        now = self._clock()
        for prefix in [p for p, e in self._entries.items() if e.fresh_until <= now]:
            del self._entries[prefix]
        if len(self._entries) >= self._max_entries:
            for prefix in list(self._entries)[: len(self._entries) // 2 or 1]:
                del self._entries[prefix]

    def drop_account(self, account_id: int) -> None:
        with self._lock:
            self._epoch += 1
            for prefix in [p for p, e in self._entries.items() if e.account_id == account_id]:
                del self._entries[prefix]

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.clear()


# This process's cache, used by the API's authentication class.
key_cache = KeyCache()


@receiver(account_changed, dispatch_uid="portal.keys.cache.forget_account")
def _forget_account(sender: object, *, account_id: int, **kwargs: object) -> None:
    """This process forgets the account at once, and again when the transaction commits: a
    request may have read the old rows in between."""
    key_cache.drop_account(account_id)
    transaction.on_commit(lambda: key_cache.drop_account(account_id))
