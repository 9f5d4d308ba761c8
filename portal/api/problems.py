"""API errors as RFC 9457 problem details: ``application/problem+json`` with type, title, status,
detail and extension members (``errors``, ``allowed_tiers``, ``limit``...).

Every DRF view goes through ``problem_exception_handler`` (settings.REST_FRAMEWORK). An exception
may carry ``problem_type`` (a slug registered here) and ``problem_extra`` (extension members);
the metering throttle's 429s use both. Each type URI resolves to a page that explains the type
(``portal:problem-type``), so a developer who pastes it into a browser learns what went wrong.
"""

import http
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import reverse
from rest_framework import exceptions, status
from rest_framework.response import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"

# Django's own logger for 500s, so error emails and log routing see API failures too.
request_logger = logging.getLogger("django.request")


@dataclass(frozen=True)
class ProblemType:
    slug: str
    title: str
    status: int
    description: str


PROBLEM_TYPES: dict[str, ProblemType] = {}


def register_problem_type(problem_type: ProblemType) -> ProblemType:
    """Make a type's URI resolve to its explanation page. Other apps register their own types."""
    PROBLEM_TYPES[problem_type.slug] = problem_type
    return problem_type


for _type in [
    ProblemType(
        "invalid-request",
        "Your request parameters didn't validate",
        400,
        "A query parameter or a field of the JSON body is missing or has a bad value. "
        "The errors member lists each one: field (dotted path, null for the request as a whole) "
        "and detail.",
    ),
    ProblemType(
        "malformed-body",
        "The request body is not valid JSON",
        400,
        "The body could not be parsed as JSON. Send a JSON document with "
        "Content-Type: application/json.",
    ),
    ProblemType(
        "unauthenticated",
        "A valid API key is required",
        401,
        "Send your key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'. The reason member "
        "says what was wrong: missing, malformed, unknown, expired or revoked. Create or roll "
        "keys on the API keys page of the portal.",
    ),
    ProblemType(
        "forbidden",
        "You are not allowed to do this",
        403,
        "The key is valid but may not perform this request.",
    ),
    ProblemType(
        "scope-not-allowed",
        "Your tier does not include this endpoint",
        403,
        "Endpoints declare a scope; tiers list the scopes they include. The allowed_tiers member "
        "names the public tiers that may call this endpoint, and upgrade_url is the pricing "
        "page, where you can move to one of them.",
    ),
    ProblemType(
        "account-suspended",
        "This account is suspended",
        403,
        "An operator suspended the account; every API call is refused until it is reinstated. "
        "The reason member repeats what the operator wrote.",
    ),
    ProblemType(
        "not-found",
        "No such resource",
        404,
        "Nothing answers at this path. The API's endpoints are listed at /api/docs/.",
    ),
    ProblemType(
        "method-not-allowed",
        "Method not allowed here",
        405,
        "The endpoint exists but not for this HTTP method; the Allow header lists the methods "
        "it takes.",
    ),
    ProblemType(
        "not-acceptable",
        "Cannot answer in the requested format",
        406,
        "The API answers in JSON only; send 'Accept: application/json' or no Accept header.",
    ),
    ProblemType(
        "payload-too-large",
        "The request body is too large",
        413,
        "The body is larger than the API accepts; the limit member gives the most bytes allowed.",
    ),
    ProblemType(
        "unsupported-media-type",
        "Unsupported body format",
        415,
        "Request bodies must be JSON with 'Content-Type: application/json'.",
    ),
    ProblemType(
        "rate-limited",
        "Too many requests",
        429,
        "You are over your tier's rate limit. Wait for the number of seconds in the "
        "Retry-After header; the RateLimit headers show the limit that refused the call first.",
    ),
    ProblemType(
        "server-error",
        "Something went wrong on our side",
        500,
        "An unexpected error happened and was logged. The request was not billed; it is safe "
        "to retry.",
    ),
    ProblemType(
        "service-unavailable",
        "The API is unavailable for a moment",
        503,
        "A backend the API needs did not answer in time. The request was not billed; retry "
        "after the number of seconds in the Retry-After header, if any.",
    ),
]:
    register_problem_type(_type)

# The type of an error that names none itself (a plain DRF exception).
_TYPE_FOR_STATUS = {
    400: "invalid-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
    500: "server-error",
    503: "service-unavailable",
}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"
    problem_type = "payload-too-large"

    def __init__(self, limit: int | None = None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE if limit is None else limit
        super().__init__(f"The request body is larger than {limit} bytes.")
        self.problem_extra = {"limit": limit}


def problem_type_uri(slug: str) -> str:
    return settings.SITE_URL + reverse("portal:problem-type", args=[slug])


def upgrade_url() -> str:
    """The pricing page, where a refused developer picks a tier that allows the call. Problems
    an upgrade solves carry it as their ``upgrade_url`` member, and their detail, a sentence a
    client can show as it is, points at that member rather than embedding the URL."""
    return settings.SITE_URL + reverse("billing:pricing")


def problem_body(
    *,
    status_code: int,
    detail: str,
    slug: str | None = None,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem document; ``extra`` members come after the standard ones and never replace
    them (RFC 9457 §3.2: extensions must not redefine the standard members)."""
    slug = slug or _TYPE_FOR_STATUS.get(status_code)
    known = PROBLEM_TYPES.get(slug) if slug else None
    title = known.title if known else http.HTTPStatus(status_code).phrase
    body: dict[str, Any] = {
        # about:blank: RFC 9457's "no more than the status code says", for statuses we never
        # give a type of our own.
        "type": problem_type_uri(slug) if slug else "about:blank",
        "title": title,
        "status": status_code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    for name, value in (extra or {}).items():
        body.setdefault(name, value)
    return body


def problem_response(
    request: HttpRequest, *, status_code: int, detail: str, slug: str | None = None, **extra
) -> JsonResponse:
    """A problem answer from a plain Django view (outside DRF, e.g. unknown paths under /v1/)."""
    body = problem_body(
        status_code=status_code, detail=detail, slug=slug, instance=request.path, extra=extra
    )
    return JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def problem_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER. Unexpected exceptions are logged and answered as a 500 problem
    rather than re-raised, so the view's finalize_response still runs and the request is
    settled as not billable."""
    # Imported here: rest_framework.views reads DEFAULT_THROTTLE_CLASSES when imported, and the
    # throttle module imports this one to register its problem types.
    from rest_framework.views import set_rollback

    request = context.get("request")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()

    set_rollback()
    instance = request.path if request is not None else None
    if not isinstance(exc, exceptions.APIException):
        request_logger.error(
            "Internal Server Error: %s",
            instance,
            exc_info=exc,
            extra={"status_code": 500, "request": getattr(request, "_request", None)},
        )
        body = problem_body(
            status_code=500, detail="An unexpected error happened.", instance=instance
        )
        return Response(body, status=500, content_type=PROBLEM_CONTENT_TYPE)

    headers = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if wait is not None:
        # Whole seconds, rounded up: waiting the floor of 0.4 s would be told "0" and retry early.
        headers["Retry-After"] = str(max(0, math.ceil(wait)))

    extra = dict(getattr(exc, "problem_extra", None) or {})
    slug = getattr(exc, "problem_type", None)
    if isinstance(exc, exceptions.ParseError):
        slug = slug or "malformed-body"
    if isinstance(exc.detail, list | dict):
        errors = list(_field_errors(exc.detail))
        extra.setdefault("errors", errors)
        detail = _summary(errors)
    else:
        detail = str(exc.detail)
    body = problem_body(
        status_code=exc.status_code, detail=detail, slug=slug, instance=instance, extra=extra
    )
    return Response(
        body, status=exc.status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE
    )


def _field_errors(detail: Any, path: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """Flatten DRF's nested error detail into [{"field": "items.0.value", "detail": ...}]."""
    if isinstance(detail, dict):
        for name, value in detail.items():
            sub = () if name == "non_field_errors" else (str(name),)
            yield from _field_errors(value, path + sub)
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                yield from _field_errors(value, (*path, str(index)))
            else:
                yield from _field_errors(value, path)
    else:
        yield {
            "field": ".".join(path) or None,
            "detail": str(detail),
            "code": getattr(detail, "code", None),
        }


def _summary(errors: list[dict[str, Any]]) -> str:
    if len(errors) == 1:
        error = errors[0]
        return f"{error['field']}: {error['detail']}" if error["field"] else error["detail"]
    return f"{len(errors)} problems with the request; see errors."
