"""Error reporting: Sentry when ``SENTRY_DSN`` is set, otherwise an email to ``ADMINS``.

Nothing that leaves the server carries a secret or an address: API keys keep their public
prefix and lose the secret, Stripe keys and signing secrets go, email addresses go, and so do the
credential headers and request bodies (``sentry_event_scrub``, ``AdminEmailScrubbingHandler``).

Imported by the settings module (``admins_parse``, ``sentry_init``): no models here.
"""

import logging
import re
import weakref
from collections.abc import Mapping
from email.utils import getaddresses
from typing import Any

import sentry_sdk
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation, ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest
from django.utils.log import AdminEmailHandler
from django.views.debug import SafeExceptionReporterFilter

FILTERED = "[Filtered]"

# An API key (portal/keys/format.py: mdk_<live|test>_<8 lowercase alphanumerics>_<32 letters and
# digits>), or anything that starts like one (a truncated or mistyped key). The public prefix
# stays, as the admin shows it; whatever follows it goes. No word boundary in front: in a
# URL-encoded query ("key%3Dmdk_live_...") a letter comes right before it.
_API_KEY = re.compile(r"mdk_(?:live|test)_\w*")
_API_KEY_PREFIX = re.compile(r"mdk_(?:live|test)_[a-z0-9]{8}(?=_|$)")
# Stripe secret and restricted keys, and webhook / event destination signing secrets.
_STRIPE_SECRET = re.compile(r"(?:sk|rk)_(?:live|test)_\w+|whsec_\w+")
# Also URL-encoded (%40), as it stands in a query string.
_EMAIL = re.compile(r"[\w.%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Request headers that carry credentials or signatures, lower-cased.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "cookie",
        "set-cookie",
        "x-csrftoken",
        "stripe-signature",
    }
)


def _api_key_filtered(match: re.Match[str]) -> str:
    text = match.group(0)
    prefix = _API_KEY_PREFIX.match(text)
    if prefix is None:
        return FILTERED
    if prefix.end() == len(text):
        return text  # a bare public prefix ("API key mdk_live_ab12cd34")
    return f"{prefix.group(0)}_{FILTERED}"


def scrub_text(text: str) -> str:
    """``text`` without API key secrets, Stripe secrets or email addresses."""
    text = _API_KEY.sub(_api_key_filtered, text)
    text = _STRIPE_SECRET.sub(FILTERED, text)
    return _EMAIL.sub(FILTERED, text)


def _scrub(value: Any) -> Any:
    """Every string in a JSON-like structure scrubbed, keys included (a dict keyed by email)."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def sentry_event_scrub(event: dict[str, Any], hint: Mapping[str, Any]) -> dict[str, Any]:
    """Sentry's ``before_send`` (and ``before_send_transaction``): runs on the serialized event,
    after the SDK's own denylist scrubber, and returns what is sent.

    Request bodies are dropped (``max_request_body_size="never"`` already keeps the SDK from
    reading them), as are cookies; credential headers are replaced; then every string left
    (exception messages, frame variables, breadcrumbs, the URL) is scrubbed of keys, secrets and
    addresses. (https://docs.sentry.io/platforms/python/configuration/filtering/)"""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in headers:
                if name.lower() in SENSITIVE_HEADERS:
                    headers[name] = FILTERED
    return _scrub(event)


def sentry_options(
    *, dsn: str, environment: str, release: str | None, traces_sample_rate: float | None
) -> dict[str, Any]:
    """The arguments of ``sentry_sdk.init`` (https://docs.sentry.io/platforms/python/configuration/options/)."""
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    return {
        "dsn": dsn,
        "environment": environment,
        "release": release,
        "integrations": [DjangoIntegration(), CeleryIntegration()],
        # send_default_pii is left at its default, off: no user emails, IP addresses or cookies
        # attached by the SDK. (2.x from 2.75 on warns when it is passed at all, in favour of
        # data_collection, which the 2.20 the project allows does not know.)
        # Never read request bodies (the API's JSON bodies, form posts with passwords).
        "max_request_body_size": "never",
        # None: no tracing at all (0.0 would still continue traces started upstream).
        "traces_sample_rate": traces_sample_rate,
        "before_send": sentry_event_scrub,
        "before_send_transaction": sentry_event_scrub,
    }


def sentry_init(
    *, dsn: str, environment: str, release: str | None, traces_sample_rate: float | None
) -> None:
    """Called from the settings module, so the web processes and the Celery worker (which
    loads the same settings at start-up) both report: "if you're using Celery with Django in a
    conventional setup, have already initialized the SDK in your settings.py file, and have
    Celery using the same settings with config_from_object, you don't need to initialize the SDK
    separately for Celery" (https://docs.sentry.io/platforms/python/integrations/celery/)."""
    from sentry_sdk.integrations.logging import ignore_logger

    sentry_sdk.init(
        **sentry_options(
            dsn=dsn,
            environment=environment,
            release=release,
            traces_sample_rate=traces_sample_rate,
        )
    )
    # Client-caused 400s (a forged Host header, a tampered session) logged at ERROR: anyone could
    # spend the project's event quota with them
    # (https://docs.sentry.io/platforms/python/integrations/logging/#ignoring-a-logger).
    ignore_logger("django.security.*")


def sample_rate_parse(name: str, raw: str) -> float | None:
    """A sampling rate from the environment: "" is None (off), else a number from 0 to 1."""
    if not raw.strip():
        return None
    try:
        rate = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not 0.0 <= rate <= 1.0:
        raise ImproperlyConfigured(f"{name}={rate} must be between 0 and 1")
    return rate


def _is_address(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def admins_parse(raw: str) -> list[tuple[str, str]]:
    """``ADMINS`` from ``"Jane Doe <jane@example.com>, ops@example.com"``: Django 5.2 wants
    (name, address) pairs; a bare address is its own name. Anything that is not an address
    stops the start-up (a typo would otherwise silence every error report)."""
    if not raw.strip():
        return []
    pairs = getaddresses([raw])
    if not pairs or not all(_is_address(address) for _, address in pairs):
        raise ImproperlyConfigured(
            f"ADMINS={raw!r} is not a comma-separated list of addresses "
            '("Name <address>" or address)'
        )
    return [(name or address, address) for name, address in pairs]


class ReportFilter(SafeExceptionReporterFilter):
    """What error emails (and DEBUG's error page) show of settings, headers and cookies:
    Django's list (API, AUTH, TOKEN, KEY, SECRET, PASS, SIGNATURE, HTTP_COOKIE) plus session and
    CSRF cookies, which Django's list lets through as "sessionid = '...'"."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|SESSION|CSRF|DSN", flags=re.I
    )


class AdminEmailScrubbingHandler(AdminEmailHandler):
    """Django's error email to ``ADMINS`` (plain text: ``include_html`` stays False, so frame
    variables are never mailed), with the subject and the report scrubbed like a Sentry event:
    an exception message or a URL may hold a key or an address."""

    def send_mail(self, subject: Any, message: Any, *args: Any, **kwargs: Any) -> None:
        super().send_mail(scrub_text(str(subject)), scrub_text(str(message)), *args, **kwargs)


class SentryRequestErrorHandler(logging.Handler):
    """Sends ``django.request`` records that carry a traceback to Sentry.

    Sentry's Django integration ignores that logger (it catches Django's own 500s from the
    ``got_request_exception`` signal instead, sentry_sdk/integrations/django/__init__.py), but the
    API's exception handler (portal/api/problems.py) answers every exception itself, so no signal
    is sent and an API 500 would reach Sentry only through this record. A page's 500 is seen both
    ways; Sentry's DedupeIntegration drops the second capture of the same exception object. A
    no-op while Sentry is not initialised."""

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info or record.exc_info[0] is None:
            return
        if not sentry_sdk.get_client().is_active():
            return
        sentry_sdk.capture_exception(record.exc_info)


class UnexpectedErrorsOnly(logging.Filter):
    """Only unexpected exceptions are mailed: records with a traceback that is not a client's
    ``SuspiciousOperation`` (answered 400: a forged Host header, a tampered session). A 5xx
    answered by design has no traceback (the API's 503 while Redis is down, which Django logs
    for every call). Mailing either would send one email per request to whoever makes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[0] is None:
            return False
        return not issubclass(record.exc_info[0], SuspiciousOperation)


class OneReportPerRequest(logging.Filter):
    """Keeps one ``django.request`` record per failed request: the one with the traceback.

    Django logs every 5xx response once more after the view returned it
    (``django.utils.log.log_response``) unless the response is marked as logged. The API's
    exception handler logs the exception, traceback included, and returns the 500 as an ordinary
    response, so that second record (no traceback) would be a second email or Sentry event for
    every API error."""

    def __init__(self) -> None:
        super().__init__()
        # Requests whose server error was reported; weak, so a finished request is forgotten.
        self._reported: weakref.WeakSet[HttpRequest] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        status_code = getattr(record, "status_code", None)
        if not isinstance(request, HttpRequest) or not isinstance(status_code, int):
            return True
        if status_code < 500:
            return True
        if record.exc_info:
            self._reported.add(request)
            return True
        return request not in self._reported
