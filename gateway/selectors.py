"""Reads of upstreams and endpoints (the proxy's own lookups go through ``gateway.routes``)."""

import re

from gateway.models import SERVICE_TOKEN_START, Endpoint, Upstream
from gateway.paths import parse_template

SERVICE_TOKEN_RE = re.compile(rf"^({SERVICE_TOKEN_START}[a-z0-9]{{8}})_([A-Za-z0-9]{{32}})$")


def upstream_for_service_token(raw_token: str) -> Upstream | None:
    """The upstream a service token belongs to; None when it is malformed, unknown or wrong."""
    found = SERVICE_TOKEN_RE.fullmatch(raw_token)
    if found is None:
        return None
    prefix, secret = found.groups()
    upstream = Upstream.objects.filter(service_token_prefix=prefix).first()
    if upstream is None or not upstream.service_token_matches(secret):
        return None
    return upstream


def endpoint_for_operation(*, upstream: Upstream, operation_id: str) -> Endpoint | None:
    """The live endpoint of ``upstream`` with this operationId; None when there is none."""
    return (
        Endpoint.objects.live()
        .select_related("upstream")
        .filter(upstream=upstream, operation_id=operation_id)
        .first()
    )


def live_endpoint_for(*, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
    """The live endpoint answering ``method`` at ``path`` (without the /v1 prefix) and its
    path parameters, still percent-encoded; None when no live endpoint matches."""
    candidates = Endpoint.objects.live().select_related("upstream").filter(method=method.upper())
    for endpoint in sorted(candidates, key=lambda e: route_precedence(e.route_key)):
        params = parse_template(endpoint.public_path).match(path)
        if params is not None:
            return endpoint, params
    return None


def route_precedence(route_key: str) -> tuple[int, str]:
    """Literal segments win over parameters (``/users/me`` before ``/users/{id}``), as OpenAPI
    says ("concrete paths are matched before templated ones"); then alphabetical, so the order
    never depends on the database."""
    return (route_key.count("{}"), route_key)
