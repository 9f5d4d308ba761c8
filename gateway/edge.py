"""Verify and settle, for upstreams that keep their own edge: ``POST /v1/keys/verify`` and
``POST /v1/keys/settle``.

An upstream that answers developers itself (its own gateway, its own TLS) asks Meterdesk
before each call whether a developer's key may make it, and tells it afterwards what the call
cost. Both are authenticated by the upstream's service token (``Authorization: Bearer
mdk_svc_...``, issued in the admin; only its hash is stored) and go through the same limiter
and the same meter as the proxy (``metering.hotpath``), under the endpoint's meter name, so a
call counts the same whichever way it came.

- **verify** ``{key, endpoint, cost?}`` (``endpoint``: the operationId of one of this upstream's
  live endpoints; ``cost``: units to reserve, 0..its ``max_cost``, default ``max_cost``). The
  key is authenticated and authorised as the proxy does (key cache, suspension, tier scope,
  cost above burst), then admitted in one limiter call. The answer is a decision, not an HTTP
  error: ``allowed``, and when refused the ``status`` and ``problem`` the upstream should answer
  with (401 for a key that is not this install's, revoked or expired; 403; 429; 503 when the
  limiter does not answer and the install fails closed), ``headers`` to copy onto the answer,
  ``limits`` as data, and a ``reservation``.
- **settle** ``{reservation, units | give_back: true, status?}``: keeps ``units`` (at most the
  reservation) and gives the rest back; ``give_back``, or a ``status`` the endpoint does not
  bill, gives everything back and counts an error. Settling again, whatever is sent, changes
  nothing and answers the same (the limiter records the settle under the call's token:
  give_back.lua).

The reservation is opaque to the upstream: Django's signing (HMAC-SHA256 keyed from
``SECRET_KEY``, https://docs.djangoproject.com/en/5.2/topics/signing/) over the upstream, the
endpoint, the account, the key, the meter name, the units reserved, the usage minute, the
limiter's token and the expiry. A forged or altered one, or another upstream's, is a 400; one
past its expiry (``TOKEN_SECONDS`` after its minute began, when the rollup may seal the minute)
is a 410 and its units stay billed.
"""

from datetime import UTC, datetime
from typing import Any

from django.core import signing
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.models import Endpoint, Upstream
from gateway.selectors import endpoint_for_operation, upstream_for_service_token
from metering.hotpath import (
    admit,
    decision_headers,
    decision_limits,
    settle_reservation,
)
from metering.limiter.base import (
    BILLABLE_STATUSES,
    TOKEN_SECONDS,
    Decision,
    LimiterUnavailable,
    Outcome,
    Reservation,
    Settlement,
)
from portal.api.authentication import KeyRefused
from portal.api.permissions import AccountSuspended, ScopeNotAllowed
from portal.api.problems import ProblemType, problem_body, register_problem_type
from portal.api.throttling import CostAboveBurst, MeteringUnavailable, QuotaExceeded, RateLimited
from portal.keys.cache import KeyRejected, key_cache
from portal.keys.last_used import last_used_buffer
from portal.principal import ApiPrincipal
from portal.selectors import tier_names_allowing

SERVICE_REALM = 'Bearer realm="upstreams"'
RESERVATION_SALT = "meterdesk.gateway.reservation"

register_problem_type(
    ProblemType(
        "invalid-reservation",
        "The reservation is not valid",
        400,
        "The reservation sent to /v1/keys/settle was not made by /v1/keys/verify for this "
        "upstream (it was altered, truncated, or belongs to another upstream's service token). "
        "Send the reservation string exactly as verify returned it.",
    )
)
register_problem_type(
    ProblemType(
        "reservation-expired",
        "The reservation has expired",
        410,
        "A reservation can be settled for three minutes from the minute its call was admitted "
        "in; after that the usage minute may be rolled up and billed, so nothing is given "
        "back: the call stays billed at the units it reserved. Settle as soon as the call "
        "ends.",
    )
)


class ServiceTokenRefused(AuthenticationFailed):
    problem_type = "unauthenticated"
    default_detail = (
        "Send this upstream's service token as 'Authorization: Bearer mdk_svc_...'; it is "
        "issued on the upstream's admin page."
    )


class InvalidReservation(APIException):
    status_code = 400
    default_code = "invalid_reservation"
    problem_type = "invalid-reservation"
    default_detail = "This reservation was not issued by /v1/keys/verify for this upstream."


class ReservationExpired(APIException):
    status_code = 410
    default_code = "reservation_expired"
    problem_type = "reservation-expired"
    default_detail = (
        "This reservation has expired and can no longer be settled; the call stays billed at "
        "the units it reserved."
    )


class _Service:
    """``request.user`` of a call made with a service token: no person, no row."""

    is_authenticated = True
    is_active = True
    is_staff = False

    def __init__(self, upstream: Upstream):
        self.upstream = upstream

    def __str__(self) -> str:
        return f"upstream {self.upstream.name}"


class ServiceTokenAuthentication(BaseAuthentication):
    """The upstream's service token, ``Authorization: Bearer mdk_svc_<8>_<32>``, checked
    against its stored SHA-256 in constant time (``gateway.selectors``)."""

    def authenticate(self, request: Request) -> tuple[_Service, Upstream] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        upstream = upstream_for_service_token(token) if scheme.lower() == "bearer" else None
        if upstream is None:
            raise ServiceTokenRefused()
        return _Service(upstream), upstream

    def authenticate_header(self, request: Request) -> str:
        return SERVICE_REALM


class UpstreamOnly(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, Upstream)


def _upstream(request: Request) -> Upstream:
    upstream = request.auth
    assert isinstance(upstream, Upstream)  # UpstreamOnly let nothing else through
    return upstream


class VerifyInput(serializers.Serializer):
    key = serializers.CharField(max_length=200)
    endpoint = serializers.CharField(max_length=64)
    cost = serializers.IntegerField(min_value=0, max_value=10**9, required=False)


class SettleInput(serializers.Serializer):
    reservation = serializers.CharField(max_length=2000)
    units = serializers.IntegerField(min_value=0, max_value=10**9, required=False)
    give_back = serializers.BooleanField(required=False)
    status = serializers.IntegerField(min_value=100, max_value=599, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        giving_back = attrs.get("give_back", False)
        if giving_back and "units" in attrs:
            raise ValidationError({"units": ["Send units or give_back: true, not both."]})
        if not giving_back and "units" not in attrs:
            raise ValidationError(
                {"units": ["Send the units the call cost, or give_back: true to return them all."]}
            )
        return attrs


class _EdgeView(APIView):
    authentication_classes = [ServiceTokenAuthentication]
    permission_classes = [UpstreamOnly]
    # The limiter is called by the view itself, for the developer's key, not for the caller.
    throttle_classes: list = []
    # Not in the public schema: these serve upstreams, not developers (docs/gateway.md).
    schema = None

    @staticmethod
    def valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class KeyVerifyView(_EdgeView):
    def post(self, request: Request) -> Response:
        upstream = _upstream(request)
        data = self.valid(VerifyInput, request.data)
        endpoint = endpoint_for_operation(upstream=upstream, operation_id=data["endpoint"])
        if endpoint is None:
            raise ValidationError(
                {"endpoint": ["This upstream has no live endpoint with this operationId."]}
            )
        cost = data.get("cost", endpoint.max_cost)
        if cost > endpoint.max_cost:
            raise ValidationError(
                {"cost": [f"At most the endpoint's max_cost, {endpoint.max_cost} units."]}
            )
        return Response(_verify(upstream, endpoint, data["key"], cost))


class KeySettleView(_EdgeView):
    def post(self, request: Request) -> Response:
        upstream = _upstream(request)
        data = self.valid(SettleInput, request.data)
        reservation, endpoint_id = _reservation_read(data["reservation"], upstream=upstream)
        units = data.get("units", 0)
        if units > reservation.cost:
            raise ValidationError(
                {"units": [f"At most the {reservation.cost} units this call reserved."]}
            )
        error = data.get("give_back", False)
        if "status" in data:
            error = error or data["status"] not in _billable_statuses(endpoint_id)
        try:
            result = settle_reservation(reservation, units=units, error=error)
        except LimiterUnavailable as exc:
            raise MeteringUnavailable() from exc
        if result.settlement == Settlement.LATE:
            raise ReservationExpired()
        return Response(
            {
                "reserved": reservation.cost,
                "units": reservation.cost - result.given_back,
                "given_back": result.given_back,
                "error": result.error,
            }
        )


def _verify(upstream: Upstream, endpoint: Endpoint, raw_key: str, cost: int) -> dict[str, Any]:
    try:
        principal = key_cache.resolve(raw_key.strip())
        _authorise(principal, endpoint, cost)
        decision = _admit(raw_key, principal, endpoint, cost)
    except KeyRejected as rejected:
        return _refusal(KeyRefused(rejected), reason=f"key_{rejected.reason}")
    except (AccountSuspended, ScopeNotAllowed, CostAboveBurst, MeteringUnavailable) as exc:
        return _refusal(exc, reason=exc.problem_type.replace("-", "_"))
    last_used_buffer.record(decision.key_id)
    body = {
        "allowed": decision.admitted,
        "reason": decision.outcome.value,
        "key": {
            "prefix": principal.key_prefix,
            "account": principal.account_id,
            "tier": principal.tier_slug,
        },
        "limits": decision_limits(decision),
    }
    headers = decision_headers(decision)
    if not decision.admitted:
        refused = (
            QuotaExceeded(decision)
            if decision.outcome == Outcome.QUOTA_EXCEEDED
            else RateLimited(decision)
        )
        return {**_refusal(refused, reason=decision.outcome.value, headers=headers), **body}
    counted = decision.outcome == Outcome.ADMITTED
    expires = decision.minute + TOKEN_SECONDS
    return {
        **body,
        "status": None,
        "problem": None,
        "headers": headers,
        "reserved": cost if counted else 0,
        # Fail open (the limiter did not answer): admitted, nothing counted, nothing to settle.
        "reservation": _reservation_write(upstream, endpoint, decision, expires)
        if counted
        else None,
        "expires_at": datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
        if counted
        else None,
    }


def _authorise(principal: ApiPrincipal, endpoint: Endpoint, cost: int) -> None:
    """What the proxy checks before admitting (gateway.proxy._authorise), in its order."""
    if not principal.account_active:
        raise AccountSuspended(reason=principal.suspended_reason)
    if endpoint.scope and not principal.allows(endpoint.scope):
        raise ScopeNotAllowed(
            scope=endpoint.scope,
            tier_name=principal.tier_name,
            allowed_tiers=tier_names_allowing(endpoint.scope),
        )
    burst = principal.burst or principal.rate_limit
    if cost > burst:
        raise CostAboveBurst(cost=cost, burst=burst)


def _admit(raw_key: str, principal: ApiPrincipal, endpoint: Endpoint, cost: int) -> Decision:
    """One limiter call; a principal another process made stale is read again, checked again
    and admitted once more, as the built-in endpoints' throttle does."""
    for attempt in range(2):
        try:
            decision = admit(
                principal=principal,
                endpoint=endpoint.meter_name,
                cost=cost,
                billable_statuses=endpoint.billable_statuses,
            )
        except LimiterUnavailable as exc:
            raise MeteringUnavailable() from exc
        if decision.outcome != Outcome.STALE:
            return decision
        if attempt == 0:
            key_cache.drop_account(principal.account_id)
            principal = key_cache.resolve(raw_key.strip())
            _authorise(principal, endpoint, cost)
    raise MeteringUnavailable()


def _refusal(
    refused: APIException, *, reason: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A refused decision: the status and problem+json the upstream should answer with."""
    headers = dict(headers or {})
    wait = getattr(refused, "wait", None)
    if wait is not None:
        headers["Retry-After"] = str(max(0, int(wait)))
    if refused.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return {
        "allowed": False,
        "reason": reason,
        "status": refused.status_code,
        "problem": problem_body(
            status_code=refused.status_code,
            detail=str(refused.detail),
            slug=getattr(refused, "problem_type", None),
            extra=getattr(refused, "problem_extra", None),
        ),
        "headers": headers,
        "reserved": 0,
        "reservation": None,
        "expires_at": None,
        "limits": [],
    }


def _reservation_write(
    upstream: Upstream, endpoint: Endpoint, decision: Decision, expires: int
) -> str:
    reservation = decision.reservation
    return signing.dumps(
        {
            "u": upstream.pk,
            "n": endpoint.pk,
            "a": reservation.account_id,
            "k": reservation.key_id,
            "e": reservation.endpoint,
            "c": reservation.cost,
            "m": reservation.minute,
            "t": reservation.token,
            "p": reservation.period_key,
            "i": reservation.interval_us,
            "x": expires,
        },
        salt=RESERVATION_SALT,
        compress=False,
    )


def _reservation_read(value: str, *, upstream: Upstream) -> tuple[Reservation, int]:
    """The reservation and its endpoint's id; ``InvalidReservation`` unless it was signed here
    for ``upstream``, ``ReservationExpired`` once it can no longer be settled."""
    try:
        payload = signing.loads(value, salt=RESERVATION_SALT)
        if payload["u"] != upstream.pk:
            raise InvalidReservation()
        reservation = Reservation(
            account_id=int(payload["a"]),
            key_id=int(payload["k"]),
            endpoint=str(payload["e"]),
            cost=int(payload["c"]),
            minute=int(payload["m"]),
            token=str(payload["t"]),
            period_key=int(payload["p"]),
            interval_us=int(payload["i"]),
        )
        expires, endpoint_id = int(payload["x"]), int(payload["n"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise InvalidReservation() from None
    if datetime.now(UTC).timestamp() >= expires:
        raise ReservationExpired()
    return reservation, endpoint_id


def _billable_statuses(endpoint_id: int) -> list[int]:
    # Archived endpoints too: a call admitted before the archive is still settled by its rules.
    found = Endpoint.objects.filter(pk=endpoint_id).values_list("billable_statuses", flat=True)
    statuses = found.first()
    return list(BILLABLE_STATUSES) if statuses is None else list(statuses)
