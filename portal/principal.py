"""Who is asking: what an API request is allowed to do, resolved once from its key and cached
in-process, the type of a page request behind ``login_required``, and who acts for a request.

The authentication class builds an ``ApiPrincipal`` from the database on a cold path and keeps
it for ``API_KEY_CACHE_SECONDS``; the limiter and the views read only this object, so a warm
request runs no SQL. Everything in it is plain data (no model instances) so it is safe to share
between threads.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True, slots=True)
class ApiPrincipal:
    key_id: int
    key_prefix: str
    # None: the key never expires (a rolled key's grace period ends at its expiry).
    key_expires_at: datetime | None
    account_id: int
    account_active: bool
    suspended_reason: str
    tier_id: int
    tier_slug: str
    tier_name: str
    scopes: frozenset[str]
    # Units per minute and the most that may be spent at once.
    rate_limit: int
    burst: int
    # Included units this period, operator credits added.
    quota: int
    # "block" or "bill".
    overage_policy: str
    # Most units past the quota the spend cap pays for; None: no cap.
    overage_cap: int | None
    period_start: datetime
    period_end: datetime
    # Account.cache_version when this was read.
    version: int

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class AuthenticatedHttpRequest(HttpRequest):
    """A page request that ``login_required`` let through: its ``user`` is a signed-in ``User``,
    never ``AnonymousUser``. Views so decorated take this instead of ``HttpRequest`` (django-stubs'
    recipe); at run time it is never instantiated."""

    user: "User"


def request_actor(request: HttpRequest) -> "User | None":
    """Who an action taken for ``request`` is recorded against (the ``actor`` of the services):
    its signed-in user, or None (the system) for an anonymous one. The admin lets only signed-in
    staff in, so there it is always the operator, but django-stubs type every request's user as
    possibly anonymous."""
    return request.user if request.user.is_authenticated else None
