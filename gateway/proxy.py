"""The gateway's proxy, apart from any web framework: ``/v1/<public path>`` of a live endpoint,
metered and passed to its upstream.

Two thin front ends drive it: ``gateway.asgi.GatewayFront``, the ASGI app production serves,
which answers gateway routes before Django's handler is involved (it costs ~8 ms of CPU per
request, docs/performance.md) and streams request bodies as they arrive; and the Django view
``gateway.views.proxy``, which serves the same routes under WSGI (``make run``, the test
client). Both hand ``proxy_call`` a ``ProxyRequest`` and send back the ``ProxyResponse``.

The steps, in DRF's order for the built-in endpoints (a refusal never touches the counters):

1. the path, raw as sent: a ``..``, ``.``, encoded slash or backslash, absolute URL or empty
   segment → 400; matched against the route table (``gateway.routes``, no SQL when warm):
   none → None (the front end answers the API's 404); another method → 405 with ``Allow``;
2. the key (``Authorization: Bearer`` or ``X-API-Key``) through the key cache, a miss read in
   a thread → 401;
3. the account active and the tier's scopes → 403;
4. the path parameters (as in 1) → 400, and the body's declared size → 413;
5. admission: ``metering.hotpath.admit_async`` reserves the endpoint's ``max_cost`` → 429/503;
6. the call: the body streamed to the upstream as it arrives, with Meterdesk's signed headers
   (a body without a declared size is read first, up to the endpoint's limit: 413 past it), the
   answer streamed back as it comes (server-sent events included), hop-by-hop headers dropped
   both ways, the developer's key and cookies never passed on;
7. settled once the upstream's headers are in (``settle_async``): a status outside the
   endpoint's billable statuses gives every unit back; a billable one is charged the upstream's
   ``Meterdesk-Units`` (0..max_cost; missing: the endpoint's cost; invalid or above the
   maximum: the maximum, logged) and the rest of the reservation is given back. The rate-limit
   headers of the settled call go out with the answer.

Failures: no connection → 502, no answer within the timeout → 504 (problem+json, units given
back). A client that goes away before the upstream answered gets its units back (its front end
cancels the call); a stream that started with a billable status is billed as settled, however
much of it was read.
"""

import asyncio
import dataclasses
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping
from urllib.parse import unquote

from rest_framework.exceptions import APIException

from gateway.paths import path_value_refusal, raw_path_refusal
from gateway.routes import Route, RouteMatch, RouteTable, route_table
from gateway.signing import SIGNATURE_HEADER, signature
from gateway.upstream import UpstreamError, UpstreamResponse, UpstreamTimeout, upstream_pool
from metering.hotpath import admit_async, settle_async
from metering.limiter.base import Decision, LimiterUnavailable, Outcome
from portal.api.authentication import REALM_HEADER, KeyRefused, presented_key
from portal.api.permissions import AccountSuspended, ScopeNotAllowed
from portal.api.problems import (
    PROBLEM_CONTENT_TYPE,
    PayloadTooLarge,
    ProblemType,
    problem_body,
    register_problem_type,
)
from portal.api.throttling import CostAboveBurst, MeteringUnavailable, QuotaExceeded, RateLimited
from portal.database import db_read
from portal.keys.cache import KeyRejected, key_cache
from portal.keys.last_used import last_used_buffer
from portal.principal import ApiPrincipal
from portal.selectors import tier_names_allowing

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"
# RFC 9110 §7.6.1 connection options and the proxy-only fields: meaningful for one hop only.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never passed to the upstream: the developer's key, Meterdesk's own cookies (the session),
# the Host (the upstream's is set), the length (recomputed), and any Meterdesk-* header a
# client sends (the upstream must be able to trust those as ours).
_REQUEST_DROPPED = HOP_BY_HOP | {"authorization", "x-api-key", "cookie", "host", "content-length"}
# Never passed back: the upstream's unit report (ours to read), rate-limit headers (ours
# describe the call; two sets would contradict each other), and Date and Server, which the
# ASGI server writes for this hop (two of each otherwise).
_RESPONSE_DROPPED = HOP_BY_HOP | {
    "meterdesk-units",
    "date",
    "server",
    "ratelimit",
    "ratelimit-policy",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
}
UNITS_HEADER = "meterdesk-units"
BODY_CHUNK_BYTES = 64 * 1024

register_problem_type(
    ProblemType(
        "upstream-unreachable",
        "The service behind this endpoint could not be reached",
        502,
        "Meterdesk could not connect to the operator's service, or it broke off the answer. "
        "The call was not billed; it is safe to retry later.",
    )
)
register_problem_type(
    ProblemType(
        "upstream-timeout",
        "The service behind this endpoint did not answer in time",
        504,
        "The operator's service did not answer within the endpoint's timeout. The call was not "
        "billed; whether it took effect upstream is unknown, so retry only if it is safe to.",
    )
)


class PathRefused(APIException):
    status_code = 400
    default_code = "invalid_path"
    problem_type = "invalid-request"

    def __init__(self, *, name: str, why: str):
        super().__init__(f"The path parameter {name} {why}.")
        self.problem_extra = {
            "errors": [{"field": name, "detail": f"The value {why}.", "code": "invalid_path"}]
        }


@dataclasses.dataclass(slots=True)
class ProxyRequest:
    """One call as its front end received it."""

    method: str
    # The path as the client sent it, still percent-encoded (an encoded slash must stay
    # visible), with /v1; and decoded, for the problems' ``instance``.
    raw_path: str
    path: str
    query: str
    # Names in lower case, values as sent, in order (repeated names kept).
    headers: list[tuple[str, str]]
    # The declared Content-Length; None: none was sent (a chunked body, or none).
    content_length: int | None
    # The body as it arrives; None: there is none.
    body: AsyncIterator[bytes] | None
    # The address the request came from (the nearest hop: a client, or a proxy in front of
    # Meterdesk), and the scheme it came over; "" when the server does not say.
    peer: str = ""
    scheme: str = "http"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclasses.dataclass(slots=True)
class ProxyResponse:
    status: int
    # Names as they go out; a name may repeat (Set-Cookie).
    headers: list[tuple[str, str]]
    # A problem's bytes, or the upstream's answer as it arrives.
    body: bytes | AsyncIterator[bytes]


def _problem(
    call: ProxyRequest, exc: APIException, headers: Mapping[str, str] = {}
) -> ProxyResponse:
    """An API exception as the API's problem+json (the same body DRF's handler writes)."""
    body = problem_body(
        status_code=exc.status_code,
        detail=str(exc.detail),
        slug=getattr(exc, "problem_type", None),
        instance=call.path,
        extra=getattr(exc, "problem_extra", None),
    )
    out = [("Content-Type", PROBLEM_CONTENT_TYPE)]
    if exc.status_code == 401:
        out.append(("WWW-Authenticate", REALM_HEADER))
    wait = getattr(exc, "wait", None)
    if wait is not None:
        out.append(("Retry-After", str(max(0, math.ceil(wait)))))
    out.extend(headers.items())
    return ProxyResponse(exc.status_code, out, _json(body))


def _plain_problem(
    call: ProxyRequest, *, status: int, detail: str, slug: str | None = None
) -> ProxyResponse:
    body = problem_body(status_code=status, detail=detail, slug=slug, instance=call.path)
    return ProxyResponse(status, [("Content-Type", PROBLEM_CONTENT_TYPE)], _json(body))


def _json(body: object) -> bytes:
    return json.dumps(body).encode()


async def _principal(call: ProxyRequest) -> ApiPrincipal:
    raw = presented_key(call.header("authorization"), call.header("x-api-key"))
    if raw is None:
        raise KeyRefused(KeyRejected("missing"))
    try:
        principal = key_cache.resolve_cached(raw)
        if principal is None:
            principal = await db_read(key_cache.resolve, raw)
    except KeyRejected as rejected:
        raise KeyRefused(rejected) from None
    last_used_buffer.record(principal.key_id)
    return principal


async def _authorise(principal: ApiPrincipal, route: Route) -> None:
    if not principal.account_active:
        raise AccountSuspended(reason=principal.suspended_reason)
    if route.scope and not principal.allows(route.scope):
        allowed = await db_read(tier_names_allowing, route.scope)
        raise ScopeNotAllowed(
            scope=route.scope, tier_name=principal.tier_name, allowed_tiers=allowed
        )
    burst = principal.burst or principal.rate_limit
    if route.max_cost > burst:
        raise CostAboveBurst(cost=route.max_cost, burst=burst)


async def _admit(call: ProxyRequest, principal: ApiPrincipal, route: Route) -> Decision:
    def ask(principal: ApiPrincipal) -> Awaitable[Decision]:
        return admit_async(
            principal=principal,
            endpoint=route.meter_name,
            cost=route.max_cost,
            billable_statuses=route.billable_statuses,
        )

    try:
        decision = await ask(principal)
        if decision.outcome == Outcome.STALE:
            # Another process changed the account after this one cached it: read it again,
            # check it again, ask once more (as the built-in endpoints' throttle does).
            key_cache.drop_account(principal.account_id)
            principal = await _principal(call)
            await _authorise(principal, route)
            decision = await ask(principal)
            if decision.outcome == Outcome.STALE:
                raise MeteringUnavailable()
    except LimiterUnavailable as exc:
        raise MeteringUnavailable() from exc
    return decision


async def _buffered(call: ProxyRequest, limit: int) -> ProxyRequest:
    """``call`` with its body of undeclared size (chunked) read in full, up to ``limit``; past
    it, 413 before anything is counted or sent. Buffered, not streamed, as nginx does by
    default (``proxy_request_buffering``): a body cut off mid-stream would reach the upstream
    as a truncated request it might act on."""
    assert call.body is not None
    chunks = []
    seen = 0
    async for chunk in call.body:
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return dataclasses.replace(
        call, content_length=seen, body=_one(b"".join(chunks)) if seen else None
    )


async def _one(chunk: bytes) -> AsyncIterator[bytes]:
    yield chunk


def _request_headers(call: ProxyRequest) -> list[tuple[str, str]]:
    """What goes on to the upstream of the client's headers, and who forwarded it: the peer's
    address appended to ``X-Forwarded-For`` as nginx's ``$proxy_add_x_forwarded_for`` does
    (https://nginx.org/en/docs/http/ngx_http_proxy_module.html#var_proxy_add_x_forwarded_for),
    and ``X-Forwarded-Proto`` unless a proxy in front already set it. Neither is signed: an
    upstream that reads the client's address trusts only the entries its own side appended,
    counted from the right (docs/gateway.md)."""
    connection_options = {
        option.strip()
        for name, value in call.headers
        if name == "connection"
        for option in value.lower().split(",")
    }
    kept = [
        (name, value)
        for name, value in call.headers
        if name not in _REQUEST_DROPPED
        and name not in connection_options
        and not name.startswith("meterdesk-")
        and name != "x-forwarded-for"
    ]
    chain = [value for name, value in call.headers if name == "x-forwarded-for"]
    last = chain[-1].rsplit(",", 1)[-1].strip() if chain else None
    # A server that trusts the proxy in front (uvicorn's --forwarded-allow-ips) already made
    # the chain's last entry the peer: it is not appended twice.
    if call.peer and call.peer != last:
        chain.append(call.peer)
    if chain:
        kept.append(("X-Forwarded-For", ", ".join(chain)))
    if not any(name == "x-forwarded-proto" for name, _ in kept):
        kept.append(("X-Forwarded-Proto", call.scheme))
    return kept


def _meterdesk_headers(
    *, principal: ApiPrincipal, route: Route, method: str, path_and_query: str, request_id: str
) -> dict[str, str]:
    headers = {
        "Meterdesk-Timestamp": str(int(time.time())),
        "Meterdesk-Account": str(principal.account_id),
        "Meterdesk-Key": principal.key_prefix,
        "Meterdesk-Tier": principal.tier_slug,
        "Meterdesk-Request-Id": request_id,
    }
    headers[SIGNATURE_HEADER] = signature(
        secret=route.signing_secret,
        method=method,
        path_and_query=path_and_query,
        headers=headers,
    )
    return headers


def reported_units(value: str | None, *, route: Route) -> int:
    """What a billable call costs: the upstream's ``Meterdesk-Units`` on a variable-cost
    endpoint (0..max_cost); the endpoint's cost when it sends none or the price is fixed; the
    maximum when the report is not a whole number in range (the reservation holds, logged)."""
    if value is None or route.max_cost == route.cost:
        return route.cost
    text = value.strip()
    if text.isdigit() and text.isascii() and int(text) <= route.max_cost:
        return int(text)
    logger.warning(
        "Upstream %s answered Meterdesk-Units %r for %s (most %d): charged the maximum",
        route.upstream_name,
        value[:40],
        route.meter_name,
        route.max_cost,
    )
    return route.max_cost


def _response_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    connection_options = {
        option.strip()
        for name, value in headers
        if name.lower() == "connection"
        for option in value.lower().split(",")
    }
    return [
        (name, value)
        for name, value in headers
        if (lowered := name.lower()) not in _RESPONSE_DROPPED and lowered not in connection_options
    ]


async def _stream(upstream: UpstreamResponse, route: Route) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives; the connection goes back to the pool at the end,
    or is closed when the client leaves mid-stream."""
    try:
        async for chunk in upstream.body():
            yield chunk
    except UpstreamError as exc:
        # Billed as settled: the status and units were final when the stream began.
        logger.warning(
            "Upstream %s broke off %s mid-answer: %s", route.upstream_name, route.meter_name, exc
        )
    finally:
        upstream.close()


async def _settle(decision: Decision, *, status: int, units: int | None) -> dict[str, str]:
    # Shielded: a client leaving now cancels this task, and the give-back must still happen.
    return await asyncio.shield(settle_async(decision, status=status, units=units))


async def proxy_call(call: ProxyRequest) -> ProxyResponse | None:
    """Answer ``call``; None when no live endpoint is at its path (the front end answers the
    API's 404)."""
    path_only = call.raw_path.removeprefix(API_PREFIX)
    why = raw_path_refusal(path_only)
    if why is not None:
        return _plain_problem(call, status=400, detail=f"The path {why}.")
    routes = await route_table.routes_async()
    found = RouteTable.match(routes, call.method, path_only)
    if found is None:
        return None
    if isinstance(found, list):
        response = _plain_problem(
            call,
            status=405,
            detail=f"{call.method} is not allowed here; use {', '.join(found)}.",
        )
        response.headers.append(("Allow", ", ".join(found)))
        return response
    route = found.route

    try:
        principal = await _principal(call)
        await _authorise(principal, route)
        for name, value in found.params.items():
            why = path_value_refusal(value)
            if why is not None:
                raise PathRefused(name=name, why=why)
        if call.content_length is not None and call.content_length > route.max_request_bytes:
            raise PayloadTooLarge(route.max_request_bytes)
        if call.body is not None and call.content_length is None:
            call = await _buffered(call, route.max_request_bytes)
        decision = await _admit(call, principal, route)
    except APIException as exc:
        return _problem(call, exc)

    if not decision.admitted:
        headers = await _settle(decision, status=429, units=None)
        refusal = (
            QuotaExceeded(decision)
            if decision.outcome == Outcome.QUOTA_EXCEEDED
            else RateLimited(decision)
        )
        return _problem(call, refusal, headers)
    return await _call_upstream(call, principal, found, decision)


async def _call_upstream(
    call: ProxyRequest, principal: ApiPrincipal, found: RouteMatch, decision: Decision
) -> ProxyResponse:
    route = found.route
    upstream_path = route.upstream_path.fill({k: unquote(v) for k, v in found.params.items()})
    path_and_query = upstream_path + (f"?{call.query}" if call.query else "")
    request_id = uuid.uuid4().hex
    headers = _request_headers(call)
    headers.extend(
        _meterdesk_headers(
            principal=principal,
            route=route,
            method=call.method,
            path_and_query=path_and_query,
            request_id=request_id,
        ).items()
    )
    settled = False
    try:
        try:
            async with asyncio.timeout(route.timeout):
                upstream = await upstream_pool().request(
                    call.method,
                    route.base_url,
                    path_and_query,
                    headers=headers,
                    body=call.body,
                    content_length=call.content_length,
                    read_timeout=route.timeout,
                )
        except (TimeoutError, UpstreamTimeout):
            settled = True
            headers_out = await _settle(decision, status=504, units=0)
            return _with(
                _plain_problem(
                    call,
                    status=504,
                    slug="upstream-timeout",
                    detail=f"The service behind {call.path} did not answer within "
                    f"{route.timeout:g} s. The call was not billed.",
                ),
                headers_out,
                request_id,
            )
        except UpstreamError as exc:
            logger.warning(
                "Upstream %s unreachable for %s: %s", route.upstream_name, route.meter_name, exc
            )
            settled = True
            headers_out = await _settle(decision, status=502, units=0)
            return _with(
                _plain_problem(
                    call,
                    status=502,
                    slug="upstream-unreachable",
                    detail=f"The service behind {call.path} could not be reached. "
                    "The call was not billed.",
                ),
                headers_out,
                request_id,
            )
        status = upstream.status
        billable = status in route.billable_statuses
        units = reported_units(upstream.header(UNITS_HEADER), route=route) if billable else 0
        settled = True
        rate_headers = await _settle(decision, status=status, units=units)
    finally:
        if not settled:
            # The client left (this task was cancelled) or something failed before the upstream
            # answered: nothing was served, every unit goes back.
            await _settle(decision, status=499, units=0)

    response = ProxyResponse(status, _response_headers(upstream.headers), _stream(upstream, route))
    return _with(response, rate_headers, request_id)


def _with(response: ProxyResponse, headers: Mapping[str, str], request_id: str) -> ProxyResponse:
    response.headers.extend(headers.items())
    response.headers.append(("Meterdesk-Request-Id", request_id))
    return response
