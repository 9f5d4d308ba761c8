"""Reading an OpenAPI 3.0/3.1 document into the operations Meterdesk sells.

Each operation becomes an ``OperationSpec`` keyed by its ``operationId``; its price and access
come from Meterdesk's extensions on the operation:

- ``x-meterdesk-cost``: units per call, an integer (default 1), or ``{units: N, max: M}`` for a
  variable cost (the upstream answers ``Meterdesk-Units``; admission reserves ``max``);
- ``x-meterdesk-scope``: the ``Tier.scopes`` entry a tier needs (default: every tier);
- ``x-meterdesk-timeout``: seconds to wait for the upstream (default: the upstream's);
- ``x-meterdesk-billable-statuses``: status codes billed, integers or ``"2XX"``-style ranges
  (default: 2xx).

Nothing here touches the database; ``gateway.services.openapi_import`` writes the result.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.models import MAX_TIMEOUT_SECONDS, METHODS, default_billable_statuses
from gateway.paths import TemplateError, parse_template

# The largest document read, file or URL: a real API's description is well under this.
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 10.0
# Methods OpenAPI may describe that are not sold (the API answers OPTIONS and TRACE with 405).
UNSOLD_METHODS = ("OPTIONS", "TRACE")
_OPERATION_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_STATUS_RANGE_RE = re.compile(r"^([1-5])XX$")


class OpenAPIError(ValueError):
    """The document cannot be read or does not describe operations we can sell."""


@dataclass(frozen=True, slots=True)
class OperationSpec:
    operation_id: str
    method: str
    path: str
    cost: int
    max_cost: int
    scope: str
    # None: the upstream's timeout.
    timeout_seconds: float | None
    billable_statuses: list[int]
    summary: str


@dataclass(slots=True)
class ParsedDocument:
    title: str
    operations: list[OperationSpec]
    # "GET /path" of operations left out (OPTIONS, TRACE), for the summary.
    skipped: list[str] = field(default_factory=list)


def openapi_load(source: str) -> dict[str, Any]:
    """The document at ``source``: a file path, or an http(s) URL fetched with a timeout.
    JSON or YAML, whatever the name says (JSON is YAML, but JSON is tried first for speed)."""
    if "://" in source:
        text = _fetch(source)
    else:
        path = Path(source)
        try:
            if path.stat().st_size > MAX_DOCUMENT_BYTES:
                raise OpenAPIError(f"{source} is larger than {MAX_DOCUMENT_BYTES} bytes.")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise OpenAPIError(f"Cannot read {source}: {exc}") from None
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise OpenAPIError(f"{source} is neither JSON nor YAML: {exc}") from None
    if not isinstance(document, dict):
        raise OpenAPIError(f"{source} is not an OpenAPI document (expected a mapping at the top).")
    return document


def _fetch(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise OpenAPIError(f"Only http:// and https:// URLs are fetched, not {url!r}.")
    try:
        with httpx.stream("GET", url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=True) as r:
            if r.status_code != 200:
                raise OpenAPIError(f"{url} answered {r.status_code}, not the document.")
            chunks: list[bytes] = []
            size = 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > MAX_DOCUMENT_BYTES:
                    raise OpenAPIError(f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes.")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise OpenAPIError(f"Cannot fetch {url}: {exc}") from None
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise OpenAPIError(f"{url} is not UTF-8 text.") from None


def openapi_operations(document: dict[str, Any]) -> ParsedDocument:
    """Every sold operation of a 3.0/3.1 document; ``OpenAPIError`` naming each problem."""
    version = str(document.get("openapi", ""))
    if not re.match(r"^3\.[01]\.\d+$", version):
        raise OpenAPIError(
            f"Only OpenAPI 3.0 and 3.1 documents are imported; this one says "
            f"openapi: {version or '(missing)'}."
        )
    paths = document.get("paths")
    if not isinstance(paths, dict) or not paths:
        raise OpenAPIError("The document has no paths.")
    info = document.get("info")
    info = info if isinstance(info, dict) else {}
    parsed = ParsedDocument(title=str(info.get("title") or ""), operations=[])
    problems: list[str] = []
    missing_ids: list[str] = []
    seen_ids: dict[str, str] = {}
    for path, item in paths.items():
        if not isinstance(item, dict):
            problems.append(f"{path}: a path item must be a mapping")
            continue
        try:
            parse_template(str(path))
        except TemplateError as exc:
            problems.append(f"{path}: the path {exc}")
            continue
        for method_name, operation in item.items():
            method = str(method_name).upper()
            if method in UNSOLD_METHODS:
                parsed.skipped.append(f"{method} {path}")
                continue
            if method not in METHODS:
                continue  # parameters, summary, servers, $ref... of the path item
            where = f"{method} {path}"
            if not isinstance(operation, dict):
                problems.append(f"{where}: an operation must be a mapping")
                continue
            operation_id = operation.get("operationId")
            if not operation_id:
                missing_ids.append(where)
                continue
            operation_id = str(operation_id)
            if not _OPERATION_ID_RE.match(operation_id):
                problems.append(
                    f"{where}: operationId {operation_id!r} must be 1-64 letters, digits, "
                    "'_', '.' or '-'"
                )
                continue
            if operation_id in seen_ids:
                other = seen_ids[operation_id]
                problems.append(f"{where}: operationId {operation_id!r} is also used by {other}")
                continue
            seen_ids[operation_id] = where
            try:
                parsed.operations.append(_operation(operation_id, method, str(path), operation))
            except OpenAPIError as exc:
                problems.append(f"{where}: {exc}")
    if missing_ids:
        problems.insert(
            0,
            "operations without an operationId (Meterdesk keys endpoints by it): "
            + ", ".join(missing_ids),
        )
    if problems:
        raise OpenAPIError("The document cannot be imported:\n- " + "\n- ".join(problems))
    if not parsed.operations:
        raise OpenAPIError("The document describes no operation to sell.")
    return parsed


def _operation(operation_id: str, method: str, path: str, operation: dict) -> OperationSpec:
    cost, max_cost = _cost(operation.get("x-meterdesk-cost", 1))
    scope = operation.get("x-meterdesk-scope", "")
    if not isinstance(scope, str) or len(scope) > 100:
        raise OpenAPIError("x-meterdesk-scope must be a string of at most 100 characters")
    timeout = operation.get("x-meterdesk-timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_SECONDS
    ):
        raise OpenAPIError(
            f"x-meterdesk-timeout must be a number of seconds above 0, at most "
            f"{MAX_TIMEOUT_SECONDS}"
        )
    statuses = _statuses(operation.get("x-meterdesk-billable-statuses"))
    summary = operation.get("summary") or ""
    return OperationSpec(
        operation_id=operation_id,
        method=method,
        path=path,
        cost=cost,
        max_cost=max_cost,
        scope=scope,
        timeout_seconds=None if timeout is None else float(timeout),
        billable_statuses=statuses,
        summary=str(summary)[:200],
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _cost(value: object) -> tuple[int, int]:
    if isinstance(value, int) and _is_count(value):
        return value, value
    if isinstance(value, dict) and set(value) <= {"units", "max"} and "units" in value:
        units, most = value["units"], value.get("max", value["units"])
        if isinstance(units, int) and isinstance(most, int) and _is_count(units) and most >= units:
            return units, most
    raise OpenAPIError(
        "x-meterdesk-cost must be a whole number of units (0 or more), or {units: N, max: M} "
        "with M >= N for a variable cost"
    )


def _statuses(value: object) -> list[int]:
    if value is None:
        return default_billable_statuses()
    if not isinstance(value, list) or not value:
        raise OpenAPIError("x-meterdesk-billable-statuses must be a non-empty list")
    codes: set[int] = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            codes.add(item)
        elif isinstance(item, str) and (found := _STATUS_RANGE_RE.match(item.upper())):
            start = int(found.group(1)) * 100
            codes.update(range(start, start + 100))
        else:
            raise OpenAPIError(
                f"x-meterdesk-billable-statuses holds {item!r}: use status codes (200) or "
                "ranges ('2XX')"
            )
    return sorted(codes)
