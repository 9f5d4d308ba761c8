"""Writes of upstreams and endpoints: the OpenAPI import, admin edits, service tokens.

Every change an operator makes (an import, an admin edit, a token issued) writes one
``AuditEntry`` in the same transaction, and tells this process's route table
(``gateway.routes``) so the proxy serves the change at once here, and within
``GATEWAY_ROUTES_SECONDS`` on every other process.
"""

import hashlib
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from gateway.models import SERVICE_TOKEN_START, Endpoint, Upstream, new_signing_secret
from gateway.openapi import OperationSpec, ParsedDocument
from gateway.paths import parse_template
from gateway.routes import route_table
from portal.audit import audit_record, audit_snapshot

# What an import sets on an endpoint from its operation: a re-import puts these back to what
# the document says (the document is the source of truth; admin edits to them are overwritten).
IMPORTED_FIELDS = (
    "method",
    "public_path",
    "upstream_path",
    "cost",
    "max_cost",
    "scope",
    "timeout_seconds",
    "billable_statuses",
    "summary",
)
# What the admin may change, and the audit entries record.
ENDPOINT_AUDITED_FIELDS = (*IMPORTED_FIELDS, "archived_at")
UPSTREAM_AUDITED_FIELDS = ("name", "base_url", "timeout_seconds", "max_request_bytes")
_TOKEN_ALPHABET = string.ascii_letters + string.digits


class ImportRefused(Exception):
    """The import would break a rule the database also holds (two live endpoints on one route)."""


@dataclass(slots=True)
class ImportSummary:
    upstream: Upstream
    upstream_created: bool
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _values(spec: OperationSpec) -> dict[str, Any]:
    return {
        "method": spec.method,
        "public_path": spec.path,
        "upstream_path": spec.path,
        "cost": spec.cost,
        "max_cost": spec.max_cost,
        "scope": spec.scope,
        "timeout_seconds": spec.timeout_seconds,
        "billable_statuses": spec.billable_statuses,
        "summary": spec.summary,
    }


def openapi_import(
    *, parsed: ParsedDocument, upstream_url: str, name: str, actor: User | None = None
) -> ImportSummary:
    """Create or update the upstream ``name`` and its endpoints from a parsed document, in one
    transaction. Idempotent: a second import of the same document changes nothing. Operations
    gone from the document are archived (never deleted: usage rows name them); one that comes
    back is revived. ``ImportRefused`` when a route is taken by another upstream's endpoint."""
    now = timezone.now()
    with transaction.atomic():
        upstream = Upstream.objects.select_for_update().filter(name=name).first()
        created_upstream = upstream is None
        before_url = None if upstream is None else upstream.base_url
        if upstream is None:
            upstream = Upstream(name=name, base_url=upstream_url)
            upstream.full_clean()
            upstream.save()
        elif upstream.base_url != upstream_url:
            upstream.base_url = upstream_url
            upstream.full_clean()
            upstream.save(update_fields=["base_url", "updated_at"])
        summary = ImportSummary(upstream=upstream, upstream_created=created_upstream)
        summary.skipped = list(parsed.skipped)

        existing = {e.operation_id: e for e in upstream.endpoints.all()}
        _refuse_taken_routes(upstream, parsed)
        for spec in parsed.operations:
            values = _values(spec)
            endpoint = existing.pop(spec.operation_id, None)
            if endpoint is None:
                endpoint = Endpoint(upstream=upstream, operation_id=spec.operation_id, **values)
                endpoint.full_clean()
                summary.created.append(spec.operation_id)
            else:
                current = {name: getattr(endpoint, name) for name in IMPORTED_FIELDS}
                if current == values and endpoint.archived_at is None:
                    summary.unchanged.append(spec.operation_id)
                    continue
                for attribute, value in values.items():
                    setattr(endpoint, attribute, value)
                endpoint.archived_at = None
                endpoint.full_clean()
                summary.updated.append(spec.operation_id)
            endpoint.save()
        for endpoint in existing.values():
            if endpoint.archived_at is None:
                endpoint.archive(now)
                endpoint.save(update_fields=["archived_at", "updated_at"])
                summary.archived.append(endpoint.operation_id)

        audit_record(
            actor=actor,
            action="gateway.openapi_import",
            target=f"upstream {upstream.name}",
            before={} if before_url is None else {"base_url": before_url},
            after={
                "base_url": upstream.base_url,
                "created": summary.created,
                "updated": summary.updated,
                "archived": summary.archived,
                "unchanged": len(summary.unchanged),
            },
        )
        transaction.on_commit(route_table.invalidate)
    return summary


def _refuse_taken_routes(upstream: Upstream, parsed: ParsedDocument) -> None:
    """Two operations of the document, or one and another upstream's live endpoint, on one
    route (method + path with parameters unnamed) would answer the same requests."""
    wanted: dict[tuple[str, str], str] = {}
    clashes: list[str] = []
    for spec in parsed.operations:
        route = (spec.method, parse_template(spec.path).route_key)
        if route in wanted:
            clashes.append(
                f"{spec.operation_id} and {wanted[route]} both answer {spec.method} {spec.path}"
            )
        wanted[route] = spec.operation_id
    taken = (
        Endpoint.objects.live()
        .exclude(upstream=upstream)
        .filter(route_key__in={route for _, route in wanted})
        .select_related("upstream")
    )
    for other in taken:
        mine = wanted.get((other.method, other.route_key))
        if mine:
            clashes.append(
                f"{mine} would answer {other.method} {other.public_path}, which "
                f"{other.meter_name} already answers (archive it first)"
            )
    if clashes:
        raise ImportRefused("; ".join(clashes))


def endpoint_update(
    *, endpoint: Endpoint, changes: dict[str, Any], actor: User | None, reason: str = ""
) -> Endpoint:
    """Apply an operator's edit (admin) with one audit entry; nothing written when nothing
    changed. Raises ``ValidationError`` for values the model refuses."""
    before = audit_snapshot(endpoint, ENDPOINT_AUDITED_FIELDS)
    for name, value in changes.items():
        if name not in ENDPOINT_AUDITED_FIELDS:
            raise ValueError(f"{name} is not an editable endpoint field")
        setattr(endpoint, name, value)
    after = audit_snapshot(endpoint, ENDPOINT_AUDITED_FIELDS)
    if before == after:
        return endpoint
    endpoint.full_clean(exclude=["upstream", "operation_id"])
    touched = [name for name in ENDPOINT_AUDITED_FIELDS if before[name] != after[name]]
    with transaction.atomic():
        try:
            endpoint.save()
        except IntegrityError as exc:
            raise ImportRefused(
                f"Another live endpoint already answers {endpoint.method} {endpoint.public_path}."
            ) from exc
        audit_record(
            actor=actor,
            action="gateway.endpoint_change",
            target=f"endpoint {endpoint.meter_name}",
            before={name: before[name] for name in touched},
            after={name: after[name] for name in touched},
            reason=reason,
        )
        transaction.on_commit(route_table.invalidate)
    return endpoint


def upstream_update(
    *, upstream: Upstream, changes: dict[str, Any], actor: User | None, reason: str = ""
) -> Upstream:
    """Apply an operator's edit (admin) with one audit entry; nothing written when nothing
    changed. Who may change ``base_url`` is the admin's business (a permission)."""
    before = audit_snapshot(upstream, UPSTREAM_AUDITED_FIELDS)
    for name, value in changes.items():
        if name not in UPSTREAM_AUDITED_FIELDS:
            raise ValueError(f"{name} is not an editable upstream field")
        setattr(upstream, name, value)
    after = audit_snapshot(upstream, UPSTREAM_AUDITED_FIELDS)
    if before == after and upstream.pk is not None:
        return upstream
    upstream.full_clean()
    touched = [name for name in UPSTREAM_AUDITED_FIELDS if before[name] != after[name]]
    with transaction.atomic():
        created = upstream.pk is None
        upstream.save()
        audit_record(
            actor=actor,
            action="gateway.upstream_create" if created else "gateway.upstream_change",
            target=f"upstream {upstream.name}",
            before={} if created else {name: before[name] for name in touched},
            after=after if created else {name: after[name] for name in touched},
            reason=reason,
        )
        transaction.on_commit(route_table.invalidate)
    return upstream


def upstream_service_token_issue(*, upstream: Upstream, actor: User | None) -> str:
    """A new service token for /v1/keys/verify and /v1/keys/settle, returned once; only its
    prefix and the SHA-256 of its secret are kept. Replaces the previous token at once."""
    prefix = SERVICE_TOKEN_START + "".join(
        secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)
    )
    secret = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(32))
    with transaction.atomic():
        had = upstream.service_token_prefix
        upstream.service_token_prefix = prefix
        upstream.service_token_hash = hashlib.sha256(secret.encode()).hexdigest()
        upstream.save(update_fields=["service_token_prefix", "service_token_hash", "updated_at"])
        audit_record(
            actor=actor,
            action="gateway.service_token_issue",
            target=f"upstream {upstream.name}",
            before={"service_token_prefix": had},
            after={"service_token_prefix": prefix},
        )
    return f"{prefix}_{secret}"


def upstream_signing_secret_rotate(*, upstream: Upstream, actor: User | None) -> str:
    """A new signing secret, in use from the next proxied call; returned to be shown once."""
    with transaction.atomic():
        upstream.signing_secret = new_signing_secret()
        upstream.save(update_fields=["signing_secret", "updated_at"])
        audit_record(
            actor=actor,
            action="gateway.signing_secret_rotate",
            target=f"upstream {upstream.name}",
            before={},
            after={},
        )
        transaction.on_commit(route_table.invalidate)
    return upstream.signing_secret
