"""The proxy's route table: every live endpoint as plain data, per process.

The proxy matches each request here, without SQL: the table is loaded once and kept for
``GATEWAY_ROUTES_SECONDS`` (5 s). A change made through this process (a service, the admin, a
save in the shell) empties it at once; other processes load the change when their copy runs
out, so an edit or an archive holds everywhere within that time.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from gateway.paths import PathTemplate, parse_template
from portal.database import db_read


@dataclass(frozen=True, slots=True)
class Route:
    """One live endpoint with what the proxy needs of its upstream."""

    endpoint_id: int
    meter_name: str
    operation_id: str
    method: str
    public: PathTemplate
    upstream_path: PathTemplate
    upstream_name: str
    base_url: str
    signing_secret: str
    cost: int
    max_cost: int
    scope: str
    timeout: float
    billable_statuses: frozenset[int]
    max_request_bytes: int

    def upstream_url(self, params: dict[str, str]) -> str:
        return self.base_url.rstrip("/") + self.upstream_path.fill(params)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    # Path parameters, still percent-encoded as the client sent them.
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Table:
    # Each method's routes, concrete paths before templated ones.
    by_method: dict[str, tuple[Route, ...]]
    fresh_until: float


def _load_routes() -> dict[str, tuple[Route, ...]]:
    # Imported here: the models import this module's receivers' senders at app loading.
    from gateway.models import Endpoint
    from gateway.selectors import route_precedence

    by_method: dict[str, list[Route]] = {}
    endpoints = Endpoint.objects.live().select_related("upstream")
    for endpoint in sorted(endpoints, key=lambda e: route_precedence(e.route_key)):
        upstream = endpoint.upstream
        by_method.setdefault(endpoint.method, []).append(
            Route(
                endpoint_id=endpoint.pk,
                meter_name=endpoint.meter_name,
                operation_id=endpoint.operation_id,
                method=endpoint.method,
                public=parse_template(endpoint.public_path),
                upstream_path=parse_template(endpoint.upstream_path),
                upstream_name=upstream.name,
                base_url=upstream.base_url,
                signing_secret=upstream.signing_secret,
                cost=endpoint.cost,
                max_cost=endpoint.max_cost,
                scope=endpoint.scope,
                timeout=endpoint.timeout,
                billable_statuses=frozenset(endpoint.billable_statuses),
                max_request_bytes=upstream.max_request_bytes,
            )
        )
    return {method: tuple(routes) for method, routes in by_method.items()}


class RouteTable:
    def __init__(self, *, ttl: float | None = None, clock: Callable[[], float] = time.monotonic):
        # None: follow settings.GATEWAY_ROUTES_SECONDS as it is when asked (tests change it).
        self._ttl = ttl
        self._clock = clock
        self._table: _Table | None = None
        self._lock = threading.Lock()
        # Bumped by every invalidation; a load that started before one is not kept.
        self._epoch = 0

    @property
    def ttl(self) -> float:
        return settings.GATEWAY_ROUTES_SECONDS if self._ttl is None else self._ttl

    def invalidate(self) -> None:
        with self._lock:
            self._epoch += 1
            self._table = None

    def _fresh(self) -> dict[str, tuple[Route, ...]] | None:
        table = self._table
        if table is not None and table.fresh_until > self._clock():
            return table.by_method
        return None

    def routes(self) -> dict[str, tuple[Route, ...]]:
        """The live routes; reads the database when this process's copy is stale (sync)."""
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        epoch = self._epoch
        by_method = _load_routes()
        with self._lock:
            if epoch == self._epoch and self.ttl > 0:
                self._table = _Table(by_method, self._clock() + self.ttl)
        return by_method

    async def routes_async(self) -> dict[str, tuple[Route, ...]]:
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        # In Django's one thread for sync code (thread_sensitive), as every ORM call from
        # async code should be: it shares the request's connection and transaction.
        return await db_read(self.routes)

    @staticmethod
    def match(
        routes: dict[str, tuple[Route, ...]], method: str, path: str
    ) -> RouteMatch | list[str] | None:
        """The route answering ``method`` at ``path`` (without /v1); else the methods other
        routes answer at that path (a 405's Allow), or None when nothing lives there."""
        for route in routes.get(method, ()):
            params = route.public.match(path)
            if params is not None:
                return RouteMatch(route, params)
        allowed = sorted(
            other
            for other, candidates in routes.items()
            if other != method and any(r.public.match(path) is not None for r in candidates)
        )
        return allowed or None


# This process's table, read by the proxy.
route_table = RouteTable()


@receiver(post_save, sender="gateway.Endpoint", dispatch_uid="gateway.routes.endpoint_saved")
@receiver(post_delete, sender="gateway.Endpoint", dispatch_uid="gateway.routes.endpoint_deleted")
@receiver(post_save, sender="gateway.Upstream", dispatch_uid="gateway.routes.upstream_saved")
@receiver(post_delete, sender="gateway.Upstream", dispatch_uid="gateway.routes.upstream_deleted")
def _forget_routes(sender: object, **kwargs: object) -> None:
    """Now, and again on commit: a request may load the old rows in between."""
    route_table.invalidate()
    transaction.on_commit(route_table.invalidate)
