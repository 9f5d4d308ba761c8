"""The proxy: ``/v1/<public path>`` of a live endpoint, metered and passed to its upstream.

An async Django view, so under ASGI a slow upstream holds an open socket, not a worker thread.
The steps, in DRF's order for the built-in endpoints (a refusal never touches the counters):

1. match the path against the route table (``gateway.routes``, no SQL when warm): none → the
   API's 404 problem; another method → 405 with ``Allow``;
2. the key (``Authorization: Bearer`` or ``X-API-Key``) through the key cache, a miss read in
   a thread → 401;
3. the account active and the tier's scopes → 403;
4. the path parameters (no ``..``, ``.``, encoded slashes or backslashes, absolute URLs,
   empty segments) → 400, and the body's size → 413;
5. admission: ``metering.hotpath.admit_async`` reserves the endpoint's ``max_cost`` → 429/503;
6. the call: the body streamed to the upstream with Meterdesk's signed headers, the answer
   streamed back as it comes (server-sent events included), hop-by-hop headers dropped both
   ways, the developer's key and cookies never passed on;
7. settled once the upstream's headers are in (``settle_async``): a status outside the
   endpoint's billable statuses gives every unit back; a billable one is charged the upstream's
   ``Meterdesk-Units`` (0..max_cost; missing: the endpoint's cost; invalid or above the
   maximum: the maximum, logged) and the rest of the reservation is given back. The rate-limit
   headers of the settled call go out with the answer.

Failures: no connection → 502, no answer within the timeout → 504 (problem+json, units given
back). A client that goes away before the upstream answered gets its units back; a stream
that started with a billable status is billed as settled, however much of it was read.
"""

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TypeVar
from urllib.parse import quote, unquote

import httpx
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import APIException

from gateway.client import upstream_client
from gateway.paths import path_value_refusal, raw_path_refusal
from gateway.routes import Route, RouteTable, route_table
from gateway.signing import SIGNATURE_HEADER, signature
from metering.hotpath import admit_async, settle_async
from metering.limiter.base import Decision, LimiterUnavailable, Outcome
from portal.api.authentication import REALM_HEADER, ApiKeyAuthentication, KeyRefused
from portal.api.permissions import AccountSuspended, ScopeNotAllowed
from portal.api.problems import (
    PROBLEM_CONTENT_TYPE,
    PayloadTooLarge,
    ProblemType,
    problem_body,
    register_problem_type,
)
from portal.api.throttling import CostAboveBurst, MeteringUnavailable, QuotaExceeded, RateLimited
from portal.api.views import unknown_endpoint
from portal.keys.cache import KeyRejected, key_cache
from portal.keys.last_used import last_used_buffer
from portal.principal import ApiPrincipal
from portal.selectors import tier_names_allowing

logger = logging.getLogger(__name__)
_R = TypeVar("_R", bound=HttpResponseBase)

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


def _problem(request: HttpRequest, exc: APIException, **headers: str) -> JsonResponse:
    """An API exception as the API's problem+json (the same body DRF's handler writes)."""
    body = problem_body(
        status_code=exc.status_code,
        detail=str(exc.detail),
        slug=getattr(exc, "problem_type", None),
        instance=request.path,
        extra=getattr(exc, "problem_extra", None),
    )
    response = JsonResponse(body, status=exc.status_code, content_type=PROBLEM_CONTENT_TYPE)
    if exc.status_code == 401:
        response["WWW-Authenticate"] = REALM_HEADER
    wait = getattr(exc, "wait", None)
    if wait is not None:
        response["Retry-After"] = str(max(0, math.ceil(wait)))
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _plain_problem(request: HttpRequest, *, status: int, detail: str, slug: str | None = None):
    body = problem_body(status_code=status, detail=detail, slug=slug, instance=request.path)
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def _raw_path(request: HttpRequest) -> str:
    """The path as the client sent it, still percent-encoded, without /v1: Django decodes
    ``request.path`` (``%2F`` becomes ``/``), which would hide an encoded slash. ASGI servers
    pass the raw bytes as ``raw_path`` (optional in the ASGI spec: re-encoded when missing)."""
    scope = getattr(request, "scope", None) or {}
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(request.path_info, safe="/:@!$&'()*+,;=-._~")
    return path.removeprefix(API_PREFIX)


async def _principal(request: HttpRequest) -> ApiPrincipal:
    raw = ApiKeyAuthentication._presented_key(request)
    if raw is None:
        raise KeyRefused(KeyRejected("missing"))
    try:
        principal = key_cache.resolve_cached(raw)
        if principal is None:
            principal = await sync_to_async(key_cache.resolve)(raw)
    except KeyRejected as rejected:
        raise KeyRefused(rejected) from None
    last_used_buffer.record(principal.key_id)
    return principal


async def _authorise(principal: ApiPrincipal, route: Route) -> None:
    if not principal.account_active:
        raise AccountSuspended(reason=principal.suspended_reason)
    if route.scope and not principal.allows(route.scope):
        allowed = await sync_to_async(tier_names_allowing)(route.scope)
        raise ScopeNotAllowed(
            scope=route.scope, tier_name=principal.tier_name, allowed_tiers=allowed
        )
    burst = principal.burst or principal.rate_limit
    if route.max_cost > burst:
        raise CostAboveBurst(cost=route.max_cost, burst=burst)


async def _admit(request: HttpRequest, principal: ApiPrincipal, route: Route) -> Decision:
    try:
        decision = await admit_async(
            principal=principal,
            endpoint=route.meter_name,
            cost=route.max_cost,
            billable_statuses=route.billable_statuses,
        )
        if decision.outcome == Outcome.STALE:
            # Another process changed the account after this one cached it: read it again,
            # check it again, ask once more (as the built-in endpoints' throttle does).
            key_cache.drop_account(principal.account_id)
            principal = await _principal(request)
            await _authorise(principal, route)
            decision = await admit_async(
                principal=principal,
                endpoint=route.meter_name,
                cost=route.max_cost,
                billable_statuses=route.billable_statuses,
            )
            if decision.outcome == Outcome.STALE:
                raise MeteringUnavailable()
    except LimiterUnavailable as exc:
        raise MeteringUnavailable() from exc
    return decision


def _body_size(request: HttpRequest) -> int:
    """The body's size in bytes. Django's ASGI handler has read it (into memory, or a temporary
    file past FILE_UPLOAD_MAX_MEMORY_SIZE) before any view runs, so the size is known exactly;
    a Content-Length the client sent is checked first, without touching the body."""
    stream = request._stream
    body_file = getattr(stream, "stream", stream)
    if hasattr(body_file, "seek") and hasattr(body_file, "tell"):
        position = body_file.tell()
        body_file.seek(0, 2)
        size = body_file.tell()
        body_file.seek(position)
        return size
    return int(request.META.get("CONTENT_LENGTH") or 0)


async def _body_chunks(request: HttpRequest) -> AsyncIterator[bytes]:
    """The request body in chunks, read off the spooled file without blocking the loop long
    (64 KiB at a time)."""
    while chunk := request.read(BODY_CHUNK_BYTES):
        yield chunk


def _request_headers(request: HttpRequest) -> list[tuple[str, str]]:
    scope = getattr(request, "scope", None)
    if scope and "headers" in scope:
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    else:
        pairs = [(name, value) for name, value in request.headers.items()]
    connection_options = {
        option.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for option in value.split(",")
    }
    return [
        (name, value)
        for name, value in pairs
        if (lowered := name.lower()) not in _REQUEST_DROPPED
        and lowered not in connection_options
        and not lowered.startswith("meterdesk-")
    ]


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


def _response_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    connection_options = {
        option.strip().lower()
        for option in ",".join(headers.get_list("connection")).split(",")
        if option.strip()
    }
    return [
        (name, value)
        for name, value in headers.multi_items()
        if (lowered := name.lower()) not in _RESPONSE_DROPPED and lowered not in connection_options
    ]


async def _stream(upstream: httpx.Response, route: Route) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives; the connection goes back to the pool at the end,
    or is closed when the client leaves mid-stream."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        # Billed as settled: the status and units were final when the stream began.
        logger.warning(
            "Upstream %s broke off %s mid-answer: %r", route.upstream_name, route.meter_name, exc
        )
    finally:
        await upstream.aclose()


async def _settle(decision: Decision, *, status: int, units: int | None) -> dict[str, str]:
    # Shielded: a client leaving now cancels this task, and the give-back must still happen.
    return await asyncio.shield(settle_async(decision, status=status, units=units))


@csrf_exempt
async def proxy(request: HttpRequest, path: str = "") -> HttpResponseBase:
    path_only = _raw_path(request)
    why = raw_path_refusal(path_only)
    if why is not None:
        return _plain_problem(request, status=400, detail=f"The path {why}.")
    routes = await route_table.routes_async()
    found = RouteTable.match(routes, request.method or "GET", path_only)
    if found is None:
        # The API's own 404 for a path nothing answers (the built-in routes came first).
        return unknown_endpoint(request, path)
    if isinstance(found, list):
        response = _plain_problem(
            request,
            status=405,
            detail=f"{request.method} is not allowed here; use {', '.join(found)}.",
        )
        response["Allow"] = ", ".join(found)
        return response
    route, raw_params = found.route, found.params

    try:
        principal = await _principal(request)
        await _authorise(principal, route)
        for name, value in raw_params.items():
            why = path_value_refusal(value)
            if why is not None:
                raise PathRefused(name=name, why=why)
        declared = request.META.get("CONTENT_LENGTH")
        if (declared and declared.isdigit() and int(declared) > route.max_request_bytes) or (
            _body_size(request) > route.max_request_bytes
        ):
            raise PayloadTooLarge(route.max_request_bytes)
        decision = await _admit(request, principal, route)
    except APIException as exc:
        return _problem(request, exc)

    if not decision.admitted:
        headers = await _settle(decision, status=429, units=None)
        refusal = (
            QuotaExceeded(decision)
            if decision.outcome == Outcome.QUOTA_EXCEEDED
            else RateLimited(decision)
        )
        return _problem(request, refusal, **_as_kwargs(headers))
    return await _call_upstream(request, principal, route, raw_params, decision)


def _as_kwargs(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.replace("-", "_"): value for name, value in headers.items()}


async def _call_upstream(
    request: HttpRequest,
    principal: ApiPrincipal,
    route: Route,
    raw_params: dict[str, str],
    decision: Decision,
) -> HttpResponseBase:
    method = request.method or "GET"
    upstream_path = route.upstream_path.fill({k: unquote(v) for k, v in raw_params.items()})
    query = request.META.get("QUERY_STRING", "")
    path_and_query = upstream_path + (f"?{query}" if query else "")
    request_id = uuid.uuid4().hex
    headers = _request_headers(request)
    headers.extend(
        _meterdesk_headers(
            principal=principal,
            route=route,
            method=method,
            path_and_query=path_and_query,
            request_id=request_id,
        ).items()
    )
    size = _body_size(request)
    if size:
        headers.append(("Content-Length", str(size)))
    url = route.base_url.rstrip("/") + path_and_query
    client = upstream_client()
    settled = False
    try:
        outgoing = client.build_request(
            method,
            url,
            headers=headers,
            content=_body_chunks(request) if size else None,
            timeout=httpx.Timeout(route.timeout),
        )
        try:
            async with asyncio.timeout(route.timeout):
                upstream = await client.send(outgoing, stream=True)
        except (TimeoutError, httpx.TimeoutException):
            settled = True
            headers_out = await _settle(decision, status=504, units=0)
            return _with(
                _plain_problem(
                    request,
                    status=504,
                    slug="upstream-timeout",
                    detail=f"The service behind {request.path} did not answer within "
                    f"{route.timeout:g} s. The call was not billed.",
                ),
                headers_out,
                request_id,
            )
        except httpx.HTTPError as exc:
            logger.warning(
                "Upstream %s unreachable for %s: %r", route.upstream_name, route.meter_name, exc
            )
            settled = True
            headers_out = await _settle(decision, status=502, units=0)
            return _with(
                _plain_problem(
                    request,
                    status=502,
                    slug="upstream-unreachable",
                    detail=f"The service behind {request.path} could not be reached. "
                    "The call was not billed.",
                ),
                headers_out,
                request_id,
            )
        status = upstream.status_code
        billable = status in route.billable_statuses
        units = reported_units(upstream.headers.get(UNITS_HEADER), route=route) if billable else 0
        settled = True
        rate_headers = await _settle(decision, status=status, units=units)
    finally:
        if not settled:
            # The client left (this task was cancelled) or something failed before the upstream
            # answered: nothing was served, every unit goes back.
            await _settle(decision, status=499, units=0)

    response = StreamingHttpResponse(_stream(upstream, route), status=status)
    # The upstream's type or none: not Django's default text/html.
    del response["Content-Type"]
    for name, value in _response_headers(upstream.headers):
        lowered = name.lower()
        if lowered == "set-cookie":
            # Django keeps cookies apart from headers; each Set-Cookie goes through as sent.
            response.cookies.load(value)
        elif lowered in response.headers:
            response[name] = f"{response[name]}, {value}"
        else:
            response[name] = value
    return _with(response, rate_headers, request_id)


def _with(response: _R, headers: Mapping[str, str], request_id: str) -> _R:
    for name, value in headers.items():
        response[name] = value
    response["Meterdesk-Request-Id"] = request_id
    return response
