"""Errors reach someone: an API 500 is a problem+json answer to the caller and, for the operator,
one ERROR record on ``django.request`` with its traceback, which becomes one Sentry event (when
``SENTRY_DSN`` is set) or one email to ``ADMINS``; a failed Celery task too. Nothing sent carries
an API key's secret, a Stripe secret, an email address, a credential header or a request body.

Sentry is driven in-process with a transport that keeps the events instead of sending them
(https://docs.sentry.io/platforms/python/configuration/options/#transport); the settings' own
wiring is read in a fresh interpreter, as the web and worker processes read it.
"""

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
import sentry_sdk
from celery import shared_task
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler
from django.core.mail import EmailMultiAlternatives
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from metering import hotpath
from metering.limiter import get_limiter
from metering.limiter.base import LimiterUnavailable
from portal.keys.format import new_prefix, new_secret
from portal.observability.errors import (
    FILTERED,
    admins_parse,
    sample_rate_parse,
    scrub_text,
    sentry_event_scrub,
    sentry_init,
)
from tests.fresh_process import run_with_settings

EMAIL = "dev.person+tag@example.com"
STRIPE_SECRET = "sk_live_51Habcdefghijklmnopqrstuvwx"
WEBHOOK_SECRET = "whsec_0123456789abcdefABCDEF"


def a_key(mode: str = "test") -> tuple[str, str]:
    """(full key, its public prefix), minted as portal/keys/format.py mints them."""
    prefix = f"mdk_{mode}_" + new_prefix().rpartition("_")[2]
    return f"{prefix}_{new_secret()}", prefix


# --- The scrubber ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["test", "live"])
def test_a_key_keeps_its_public_prefix_and_loses_its_secret(mode):
    key, prefix = a_key(mode)
    secret = key.rpartition("_")[2]

    scrubbed = scrub_text(f"Authorization: Bearer {key} (then {key[:-5]})")

    assert secret not in scrubbed and secret[:-5] not in scrubbed
    assert scrubbed == f"Authorization: Bearer {prefix}_{FILTERED} (then {prefix}_{FILTERED})"


def test_a_bare_prefix_stays_and_key_like_garbage_goes():
    _, prefix = a_key()

    assert scrub_text(f"API key {prefix}") == f"API key {prefix}"
    assert scrub_text("mdk_live_NOTAKEY_but_secretish") == FILTERED


def test_url_encoded_keys_and_emails_go_too():
    key, prefix = a_key()

    scrubbed = scrub_text(f"/v1/me?key%3D{key}&owner=dev%40example.com")

    assert scrubbed == f"/v1/me?key%3D{prefix}_{FILTERED}&owner={FILTERED}"


def test_emails_and_stripe_secrets_go():
    text = f"owner {EMAIL} paid with {STRIPE_SECRET}; endpoint signed with {WEBHOOK_SECRET}"

    assert (
        scrub_text(text)
        == f"owner {FILTERED} paid with {FILTERED}; endpoint signed with {FILTERED}"
    )


def test_a_sentry_event_loses_bodies_cookies_credential_headers_keys_and_emails():
    key, prefix = a_key()
    event: dict[str, Any] = {
        "request": {
            "url": f"http://testserver/v1/lookup?email={EMAIL}",
            "query_string": f"email={EMAIL}",
            "headers": {
                "Authorization": f"Bearer {key}",
                "X-Api-Key": key,
                "Cookie": "sessionid=abc; csrftoken=def",
                "Stripe-Signature": "t=1,v1=deadbeef",
                "User-Agent": "curl/8",
            },
            "cookies": {"sessionid": "abc"},
            "data": {"values": [1, 2, 3], "note": "the body"},
        },
        "exception": {
            "values": [
                {
                    "type": "RuntimeError",
                    "value": f"fell over for {EMAIL} with {key}",
                    "stacktrace": {"frames": [{"vars": {"raw": f"'{key}'", EMAIL: "owner"}}]},
                }
            ]
        },
        "breadcrumbs": {"values": [{"message": f"Stripe key {STRIPE_SECRET}"}]},
    }

    scrubbed = sentry_event_scrub(event, {})

    sent = json.dumps(scrubbed)
    assert key.rpartition("_")[2] not in sent
    assert EMAIL not in sent and STRIPE_SECRET not in sent
    assert "the body" not in sent and "sessionid=abc" not in sent
    request = scrubbed["request"]
    assert "data" not in request and "cookies" not in request
    for header in ("Authorization", "X-Api-Key", "Cookie", "Stripe-Signature"):
        assert request["headers"][header] == FILTERED
    assert request["headers"]["User-Agent"] == "curl/8"
    assert scrubbed["exception"]["values"][0]["value"] == (
        f"fell over for {FILTERED} with {prefix}_{FILTERED}"
    )


# --- ADMINS and the Sentry options from the environment -------------------------------------


def test_admins_are_read_from_names_and_plain_addresses():
    assert admins_parse("") == []
    assert admins_parse('Jane Doe <jane@example.com>, ops@example.com, "Ops, Night" <n@ex.io>') == [
        ("Jane Doe", "jane@example.com"),
        ("ops@example.com", "ops@example.com"),
        ("Ops, Night", "n@ex.io"),
    ]


@pytest.mark.parametrize("raw", ["jane", "jane@example.com, nobody", "Jane <jane>"])
def test_an_admins_typo_stops_the_start_up(raw):
    with pytest.raises(ImproperlyConfigured, match="ADMINS"):
        admins_parse(raw)


def test_traces_are_off_unless_a_rate_is_given():
    assert sample_rate_parse("SENTRY_TRACES_SAMPLE_RATE", "") is None
    assert sample_rate_parse("SENTRY_TRACES_SAMPLE_RATE", "0.25") == 0.25
    for bad in ("a lot", "2"):
        with pytest.raises(ImproperlyConfigured, match="SENTRY_TRACES_SAMPLE_RATE"):
            sample_rate_parse("SENTRY_TRACES_SAMPLE_RATE", bad)


READ_WIRING = """
import json, logging, django
django.setup()
import sentry_sdk
client = sentry_sdk.get_client()
handlers = lambda name: sorted(type(h).__name__ for h in logging.getLogger(name).handlers)
print(json.dumps({
    "active": client.is_active(),
    "options": {k: client.options.get(k) for k in (
        "environment", "release", "traces_sample_rate", "max_request_body_size")},
    "pii": client.should_send_default_pii(),
    "before_send": getattr(client.options.get("before_send"), "__name__", None),
    "integrations": sorted(client.integrations) if client.is_active() else [],
    "django": handlers("django"),
    "django.request": handlers("django.request"),
    "celery.app.trace": handlers("celery.app.trace"),
}))
"""


def read_wiring(tmp_path: Path, **env: str) -> dict[str, Any]:
    result = run_with_settings(
        READ_WIRING,
        tmp_path,
        drop=lambda key: key.startswith("SENTRY_") or key in ("ADMINS", "PRODUCTION", "DEBUG"),
        **env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_with_a_dsn_errors_go_to_sentry_scrubbed_without_traces_and_no_email(tmp_path):
    wiring = read_wiring(
        tmp_path,
        # A port nothing listens on: nothing is sent by this test anyway.
        SENTRY_DSN="http://public@127.0.0.1:9/1",
        SENTRY_ENVIRONMENT="staging",
        SENTRY_RELEASE="meterdesk@1.2.3",
        ADMINS="ops@example.com",
    )

    assert wiring["active"] is True
    assert wiring["options"] == {
        "environment": "staging",
        "release": "meterdesk@1.2.3",
        "traces_sample_rate": None,
        "max_request_body_size": "never",
    }
    assert wiring["pii"] is False
    assert wiring["before_send"] == "sentry_event_scrub"
    assert {"django", "celery"} <= set(wiring["integrations"])
    assert wiring["django"] == [] and wiring["celery.app.trace"] == []
    assert wiring["django.request"] == ["SentryRequestErrorHandler"]


def test_without_a_dsn_errors_are_emailed(tmp_path):
    wiring = read_wiring(tmp_path, ADMINS="ops@example.com")

    assert wiring["active"] is False
    assert wiring["django"] == ["AdminEmailScrubbingHandler"]
    assert wiring["celery.app.trace"] == ["AdminEmailScrubbingHandler"]


# --- An API 500 -----------------------------------------------------------------------------


@pytest.fixture
def broken_product(monkeypatch, api_key):
    """/v1/lookup raises, with the caller's key and an address in the exception's message."""

    def broken(number):
        raise RuntimeError(f"the product fell over for {EMAIL} with {api_key.plaintext}")

    monkeypatch.setattr("portal.demo_product.number_facts", broken)
    return api_key


@pytest.mark.django_db
def test_an_api_500_is_a_problem_and_one_error_record_with_its_traceback(
    client, bearer, broken_product, caplog
):
    with caplog.at_level(logging.INFO):
        response = client.get("/v1/lookup?q=5", **bearer)

    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/problems/server-error/")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Django's own "Internal Server Error" line for the 500 response is not logged twice.
    assert len(errors) == 1
    [record] = errors
    assert record.name == "django.request"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert record.getMessage() == "Internal Server Error: /v1/lookup"


@pytest.mark.django_db
def test_an_api_500_emails_admins_once_scrubbed_in_plain_text(
    client, bearer, broken_product, settings
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    secret = broken_product.plaintext.rpartition("_")[2]

    client.get("/v1/lookup?q=5", **bearer)

    [email] = mail.outbox
    assert email.to == ["ops@example.com"]
    assert email.subject == "[Meterdesk] ERROR (EXTERNAL IP): Internal Server Error: /v1/lookup"
    assert "RuntimeError" in email.body and "Traceback" in email.body
    assert f"the product fell over for {FILTERED} with {broken_product.prefix}_" in email.body
    assert secret not in email.body and EMAIL not in email.body
    # include_html False: no HTML page with frame variables.
    assert isinstance(email, EmailMultiAlternatives) and email.alternatives == []


@pytest.mark.django_db
def test_nobody_is_emailed_while_admins_is_empty(client, bearer, broken_product, settings):
    settings.ADMINS = []

    assert client.get("/v1/lookup?q=5", **bearer).status_code == 500

    assert mail.outbox == []


@pytest.mark.django_db
def test_errors_by_design_are_not_mailed(client, bearer, settings, monkeypatch):
    """A 503 while the limiter is unreachable (Django logs each one at ERROR) and a forged Host
    header (django.security, ERROR) carry no traceback: mailing them would send one email per
    request to whoever makes them."""
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.METERING_FAIL_MODE = "closed"

    def unreachable(**kwargs):
        raise LimiterUnavailable("timed out")

    monkeypatch.setattr(get_limiter(), "hit", unreachable)

    statuses = [client.get("/v1/lookup?q=5", **bearer).status_code for _ in range(3)]
    statuses.append(client.get("/", HTTP_HOST="attacker.example").status_code)

    assert statuses == [503, 503, 503, 400]
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_page_500_emails_admins_once_without_the_session(db, owner, settings, monkeypatch):
    settings.ADMINS = [("Ops", "ops@example.com")]

    def broken(*args, **kwargs):
        raise RuntimeError("dashboard fell over")

    monkeypatch.setattr("portal.views.pages.organisation_for", broken)
    browser = Client(raise_request_exception=False)
    browser.force_login(owner)
    session_id = browser.cookies["sessionid"].value

    assert browser.get("/dashboard/").status_code == 500

    [email] = mail.outbox
    assert "dashboard fell over" in email.body
    assert session_id not in email.body


# --- Sentry ---------------------------------------------------------------------------------


class KeptEvents(Transport):
    """A transport that keeps what would be sent."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            event = item.get_event()
            if event is not None:
                self.events.append(event)


@pytest.fixture
def sentry_events():
    """Sentry initialised as the settings do it, its transport swapped for a list."""
    sentry_init(
        dsn="http://public@127.0.0.1:9/1", environment="test", release=None, traces_sample_rate=None
    )
    client = sentry_sdk.get_client()
    assert client.transport is not None
    client.transport.kill()
    kept = KeptEvents()
    client.transport = kept
    yield kept.events
    client.close()
    sentry_sdk.get_global_scope().set_client(None)


def wsgi_get(path: str, **headers: str) -> tuple[str, bytes]:
    """GET through Django's WSGI handler, as gunicorn calls it: Sentry's Django integration
    wraps ``WSGIHandler.__call__``, which the test client skips, and that wrapper is what adds
    the request (URL, headers) to an event. Connections stay open, as the test client keeps
    them (the test's transaction holds them)."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    route, _, query = path.partition("?")
    environ.update(PATH_INFO=route, QUERY_STRING=query, HTTP_HOST="testserver")
    environ.update(headers)
    answer: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        answer.append(status)
        return lambda data: None

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = WSGIHandler()(environ, start_response)
        body = b"".join(response)
        response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return answer[0], body


@pytest.mark.django_db
def test_an_api_500_reaches_sentry_once_with_its_traceback_and_nothing_secret(
    broken_product, sentry_events
):
    status, body = wsgi_get(
        "/v1/lookup?q=5",
        HTTP_AUTHORIZATION=f"Bearer {broken_product.plaintext}",
        HTTP_X_API_KEY=broken_product.plaintext,
        HTTP_COOKIE="sessionid=s3ss10n",
        HTTP_USER_AGENT="curl/8",
    )

    assert status.startswith("500") and json.loads(body)["status"] == 500
    [event] = sentry_events
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == (
        f"the product fell over for {FILTERED} with {broken_product.prefix}_{FILTERED}"
    )
    assert exception["stacktrace"]["frames"]
    request = event["request"]
    assert request["url"] == "http://testserver/v1/lookup"
    headers = request["headers"]
    assert headers["User-Agent"] == "curl/8"
    assert headers["Authorization"] == FILTERED and headers["X-Api-Key"] == FILTERED
    assert headers["Cookie"] == FILTERED and "cookies" not in request
    sent = json.dumps(event)
    assert broken_product.plaintext.rpartition("_")[2] not in sent
    assert EMAIL not in sent and "s3ss10n" not in sent


@pytest.mark.django_db
def test_a_page_500_reaches_sentry_once(owner, sentry_events, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("dashboard fell over")

    monkeypatch.setattr("portal.views.pages.organisation_for", broken)
    browser = Client()
    browser.force_login(owner)
    session_id = browser.cookies["sessionid"].value

    status, _ = wsgi_get("/dashboard/", HTTP_COOKIE=f"sessionid={session_id}")

    assert status.startswith("500")
    # Seen by Sentry's Django integration and by the request logger's handler: sent once.
    [event] = sentry_events
    assert event["exception"]["values"][0]["value"] == "dashboard fell over"
    sent = json.dumps(event)
    assert owner.email not in sent and session_id not in sent


@pytest.mark.django_db
def test_errors_by_design_are_not_sent_to_sentry(
    client, bearer, sentry_events, monkeypatch, settings
):
    settings.METERING_FAIL_MODE = "closed"

    def unreachable(**kwargs):
        raise LimiterUnavailable("timed out")

    monkeypatch.setattr(get_limiter(), "hit", unreachable)
    # A fresh log throttle: an earlier test's failure must not hold this one's line back.
    monkeypatch.setattr(hotpath, "_log_unavailable", hotpath._Throttled(interval=10.0))

    statuses = [client.get("/v1/lookup?q=5", **bearer).status_code for _ in range(3)]
    status, _ = wsgi_get("/", HTTP_HOST="attacker.example")

    assert statuses == [503, 503, 503]

    assert status.startswith("400")
    # The limiter's own (throttled) ERROR line is the one report of the outage.
    assert [event.get("logger") for event in sentry_events] == ["metering.hotpath"]


# --- Celery ---------------------------------------------------------------------------------


@shared_task
def failing_task(account_id: int) -> None:
    raise ValueError(f"account {account_id} of {EMAIL} could not be billed")


@pytest.mark.django_db
def test_a_failed_task_emails_admins(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]

    result = failing_task.apply(args=[7], throw=False)

    assert result.state == "FAILURE"
    [email] = mail.outbox
    assert "failing_task" in email.subject and "raised unexpected" in email.subject
    assert f"account 7 of {FILTERED} could not be billed" in email.body
    assert EMAIL not in f"{email.subject}\n{email.body}"
