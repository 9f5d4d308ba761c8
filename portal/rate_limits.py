"""What the login, signup and password-reset limits need from us: the key a login attempt is
counted under, and a cache that lets requests through when its Redis is down.

Two limiters count those attempts, both in the default cache: django-ratelimit, wrapped around
allauth's login and signup views in ``config/urls.py``, and allauth's own limits for the flows we
do not wrap (password reset, re-sending a confirmation; ``ACCOUNT_RATE_LIMITS``). allauth reads
``django.core.cache.cache`` and cannot be given another alias (allauth/core/internal/
ratelimit.py), which is why the default cache is the one that must fail open.
"""

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django_redis.cache import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def login_email(group: str, request: HttpRequest) -> str:
    """django-ratelimit key (``key(group, request)``): the address a login POST names, in the
    form allauth looks it up, so every spelling of one account shares one count.

    The login field is Django's EmailField, which strips it; allauth then lower-cases it before
    finding the user (allauth/account/internal/userkit.py ``filter_users_by_email``,
    ``for_login=True``), so ``LOGIN@example.com`` signs in to ``login@example.com``. ``lower``,
    not ``casefold``: the limit groups exactly the spellings that reach one account.
    """
    return request.POST.get("login", "").strip().lower()


# What redis-py raises when the server is gone, refuses, or answers too late (django-redis
# re-raises it when IGNORE_EXCEPTIONS is off; socket.timeout is an OSError).
_OUTAGE = (RedisError, OSError)
# allauth's counter keys, and their ":lock" keys (allauth/core/internal/ratelimit.py
# get_cache_key, cache_lock).
_ALLAUTH_RATE_LIMIT_PREFIX = "allauth:rl:"


class FailOpenRedisCache(RedisCache):
    """django-redis, except that its rate-limit counters fail open.

    While Redis cannot be reached, an operation on a rate-limit key (django-ratelimit's
    ``RATELIMIT_CACHE_PREFIX``, allauth's ``allauth:rl:``) logs a WARNING and answers as if
    Redis were empty and dropped every write: ``add`` succeeds, ``get`` returns the default,
    ``set`` and ``delete`` report nothing done, ``incr`` raises ValueError as for a missing key.
    Both limiters then let the request through: django-ratelimit takes a successful ``add`` as
    the first hit (and, with ``RATELIMIT_FAIL_OPEN``, a failed ``incr`` as no count; its
    core.py ``get_usage``); allauth takes its lock with ``add`` and finds no history.

    Every other key raises as django-redis does: a marker that must not be forgotten silently
    (allauth.mfa records each used TOTP code with ``cache.add`` to refuse its replay) is never
    taken for new. django-redis's own ``IGNORE_EXCEPTIONS`` would not do: it covers every key,
    and its ``add`` answers None, on which allauth waits a second for a lock and then refuses.
    """

    def add(self, key: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().add(key, *args, **kwargs)
        except _OUTAGE as exc:
            self._fail_open("add", key, exc)
            return True

    def get(self, key: str, default: Any = None, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().get(key, default, *args, **kwargs)
        except _OUTAGE as exc:
            self._fail_open("get", key, exc)
            return default

    def set(self, key: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().set(key, *args, **kwargs)
        except _OUTAGE as exc:
            self._fail_open("set", key, exc)
            return False

    def delete(self, key: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().delete(key, *args, **kwargs)
        except _OUTAGE as exc:
            self._fail_open("delete", key, exc)
            return False

    def incr(self, key: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().incr(key, *args, **kwargs)
        except _OUTAGE as exc:
            self._fail_open("incr", key, exc)
            raise ValueError("the rate-limit count is unavailable while Redis is down") from exc

    def _fail_open(self, operation: str, key: str, exc: Exception) -> None:
        """Re-raise ``exc`` unless ``key`` is a rate-limit counter; else say it is let through.

        The key is not logged: allauth's carry the client's address."""
        prefixes = (settings.RATELIMIT_CACHE_PREFIX, _ALLAUTH_RATE_LIMIT_PREFIX)
        if not key.startswith(prefixes):
            raise exc
        logger.warning(
            "Rate-limit cache unreachable (%s: %s: %s); the request is let through unlimited",
            operation,
            type(exc).__name__,
            exc,
        )
