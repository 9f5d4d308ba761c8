"""The operator's own API as data: upstreams (where calls go) and endpoints (what is sold).

An ``Upstream`` is a service the operator runs elsewhere; Meterdesk proxies sold calls to its
``base_url`` and signs each one with the upstream's ``signing_secret``. An ``Endpoint`` is one
operation of it, keyed by its OpenAPI ``operationId``, sold at ``/v1<public_path>`` for
``cost`` units (up to ``max_cost`` when the upstream reports its own units). Endpoints are
archived, never deleted: usage rows name them by ``meter_name`` and must keep reading right.
"""

import hashlib
import hmac
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from gateway.paths import PathTemplate, TemplateError, parse_template
from metering.limiter.base import BILLABLE_STATUSES

# A service token: a fixed start secret scanners can match, a public prefix (unique, indexed),
# then the secret, of which only the SHA-256 is kept (the same shape as API keys).
SERVICE_TOKEN_START = "mdk_svc_"  # noqa: S105 - the public start, not a secret
MAX_TIMEOUT_SECONDS = 300
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def default_billable_statuses() -> list[int]:
    return list(BILLABLE_STATUSES)


def new_signing_secret() -> str:
    # 256 bits, hex: as long as the HMAC-SHA256 block needs and easy to paste into any config.
    return secrets.token_hex(32)


def validate_base_url(value: str) -> None:
    """An http(s) URL with a host and no query, fragment or credentials: the upstream path is
    appended to it, so anything after the path would end up in the middle of every URL."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Enter an http:// or https:// URL with a host.", code="scheme")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValidationError("The URL must not hold a query or a fragment.", code="query")
    if parts.username or parts.password:
        raise ValidationError("The URL must not hold credentials.", code="credentials")


def validate_path_template(value: str) -> None:
    try:
        parse_template(value)
    except TemplateError as exc:
        raise ValidationError(f"The path template {exc}.", code="template") from None


def validate_billable_statuses(value: object) -> None:
    if not isinstance(value, list) or not all(
        isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599
        for code in value
    ):
        raise ValidationError(
            "Billable statuses are a list of HTTP status codes (100-599).", code="statuses"
        )


class Upstream(models.Model):
    name = models.SlugField(max_length=32, unique=True)
    base_url = models.CharField(
        max_length=500,
        validators=[validate_base_url],
        help_text="http(s) URL the endpoints' upstream paths are appended to.",
    )
    # Kept readable: the proxy signs every call with it. Never shown in lists.
    signing_secret = models.CharField(max_length=64, default=new_signing_secret, editable=False)
    # The service token an upstream that keeps its own edge sends to /v1/keys/verify and
    # /v1/keys/settle: its public prefix (unique) and the SHA-256 of its secret. "": none issued.
    service_token_prefix = models.CharField(max_length=32, blank=True, editable=False)
    service_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    timeout_seconds = models.FloatField(
        default=30.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(MAX_TIMEOUT_SECONDS)],
        help_text="Seconds to wait for the upstream's answer unless an endpoint says otherwise.",
    )
    max_request_bytes = models.PositiveIntegerField(
        default=1024 * 1024,
        validators=[MinValueValidator(1)],
        help_text="Largest request body passed on; larger ones are refused with a 413.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("change_upstream_url", "Can set where an upstream's calls go")]
        constraints = [
            # The proxy appends paths to it: only http(s), never a query or a fragment.
            models.CheckConstraint(
                condition=(
                    models.Q(base_url__startswith="http://")
                    | models.Q(base_url__startswith="https://")
                )
                & ~models.Q(base_url__contains="?")
                & ~models.Q(base_url__contains="#"),
                name="upstream_base_url_http",
            ),
            models.CheckConstraint(
                condition=models.Q(timeout_seconds__gt=0)
                & models.Q(timeout_seconds__lte=MAX_TIMEOUT_SECONDS),
                name="upstream_timeout_range",
            ),
            models.CheckConstraint(
                condition=models.Q(max_request_bytes__gt=0), name="upstream_max_request_bytes"
            ),
            # Looked up by prefix on every verify/settle call; "" (no token) may repeat.
            models.UniqueConstraint(
                fields=["service_token_prefix"],
                condition=~models.Q(service_token_prefix=""),
                name="upstream_service_token_prefix_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def url_for(self, path: str) -> str:
        """The upstream URL of a filled-in upstream path (which starts with '/')."""
        return self.base_url.rstrip("/") + path

    def service_token_matches(self, secret: str) -> bool:
        if not self.service_token_hash:
            return False
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return hmac.compare_digest(self.service_token_hash, digest)


class EndpointQuerySet(models.QuerySet["Endpoint"]):
    def live(self) -> "EndpointQuerySet":
        return self.filter(archived_at__isnull=True)


class Endpoint(models.Model):
    upstream = models.ForeignKey(Upstream, on_delete=models.PROTECT, related_name="endpoints")
    # The OpenAPI operationId: what re-imports match on. Letters, digits, '_', '.', '-' only,
    # so the meter name built from it reads plainly in usage rows and Redis counters.
    operation_id = models.CharField(
        max_length=64,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9_.\-]+$",
                "An operationId holds letters, digits, '_', '.' and '-' only.",
            )
        ],
    )
    method = models.CharField(max_length=7, choices=[(m, m) for m in METHODS])
    # Sold at /v1<public_path>, e.g. "/echo/{word}".
    public_path = models.CharField(max_length=500, validators=[validate_path_template])
    # The public path with its parameters unnamed ("/echo/{}"): two live endpoints may not share
    # it with one method, since they would match the same requests. Set from public_path.
    route_key = models.CharField(max_length=500, editable=False)
    upstream_path = models.CharField(max_length=500, validators=[validate_path_template])
    cost = models.PositiveIntegerField(default=1)
    # What admission reserves: the most a call may cost when the upstream reports its units
    # (Meterdesk-Units); equal to cost for a fixed price.
    max_cost = models.PositiveIntegerField(default=1)
    # A Tier.scopes entry the caller's tier must include; "": every tier may call it.
    scope = models.CharField(max_length=100, blank=True)
    # None: the upstream's timeout.
    timeout_seconds = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(MAX_TIMEOUT_SECONDS)],
    )
    billable_statuses = models.JSONField(
        default=default_billable_statuses, validators=[validate_billable_statuses]
    )
    summary = models.CharField(max_length=200, blank=True)
    # None: live. Archived endpoints are not served; their usage history stays.
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EndpointQuerySet.as_manager()

    class Meta:
        ordering = ["upstream__name", "public_path", "method"]
        constraints = [
            # Re-imports are keyed by operationId, one per upstream.
            models.UniqueConstraint(
                fields=["upstream", "operation_id"], name="endpoint_operation_unique"
            ),
            # One live endpoint answers a method on a path; archived ones may repeat it.
            models.UniqueConstraint(
                fields=["method", "route_key"],
                condition=models.Q(archived_at__isnull=True),
                name="endpoint_live_route_unique",
                violation_error_message="Another live endpoint already answers this method on "
                "this path (parameters named apart); archive it first.",
            ),
            models.CheckConstraint(
                condition=models.Q(max_cost__gte=models.F("cost")),
                name="endpoint_max_cost_gte_cost",
                violation_error_message="The maximum cost must be at least the cost.",
            ),
            models.CheckConstraint(
                condition=models.Q(cost__gte=0), name="endpoint_cost_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(method__in=METHODS), name="endpoint_method_known"
            ),
            models.CheckConstraint(
                condition=models.Q(timeout_seconds__isnull=True)
                | (
                    models.Q(timeout_seconds__gt=0)
                    & models.Q(timeout_seconds__lte=MAX_TIMEOUT_SECONDS)
                ),
                name="endpoint_timeout_range",
            ),
            models.CheckConstraint(
                condition=models.Q(public_path__startswith="/")
                & models.Q(upstream_path__startswith="/"),
                name="endpoint_paths_absolute",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.public_path} ({self.meter_name})"

    def save(self, *args, **kwargs) -> None:
        self.method = self.method.upper()
        self.route_key = parse_template(self.public_path).route_key
        super().save(*args, **kwargs)

    @property
    def meter_name(self) -> str:
        """The endpoint's name in the limiter's counters and usage rows (``UsageRollup.endpoint``):
        ``<upstream>/<operationId>``, at most 97 characters."""
        return f"{self.upstream.name}/{self.operation_id}"

    @property
    def is_live(self) -> bool:
        return self.archived_at is None

    @property
    def timeout(self) -> float:
        return self.timeout_seconds or self.upstream.timeout_seconds

    @property
    def variable_cost(self) -> bool:
        return self.max_cost > self.cost

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.max_cost is not None and self.cost is not None and self.max_cost < self.cost:
            errors["max_cost"] = "The maximum cost must be at least the cost."
        public: PathTemplate | None = None
        upstream: PathTemplate | None = None
        try:
            public = parse_template(self.public_path)
            upstream = parse_template(self.upstream_path)
        except TemplateError:
            pass  # the field validators say what is wrong
        if public and upstream and set(public.params) != set(upstream.params):
            errors["upstream_path"] = (
                "The upstream path must use the same parameters as the public path "
                f"({', '.join(sorted(public.params)) or 'none'})."
            )
        if errors:
            raise ValidationError(errors)
        if public is not None:
            # Before validate_constraints runs: the live route's uniqueness is checked on it.
            self.route_key = public.route_key

    def archive(self, now: datetime | None = None) -> None:
        self.archived_at = now or timezone.now()
