"""What every delivery from Stripe passes, at both doors (billing/webhooks.py), before anything
of it is stored or applied: a size limit, the signature, a timestamp within the tolerance on
either side of this server's clock, and the fields an event always has.

**The signature.** Stripe signs ``"{t}.{body}"`` with the endpoint's secret and sends
``Stripe-Signature: t=...,v1=...``; the SDK checks it ("Verify webhook signatures",
https://docs.stripe.com/webhooks#verify-webhook-signatures). Only the signing secret stored on
our side counts: dj-stripe's ``X-Djstripe-Webhook-Secret`` request header (honoured by dj-stripe
2.11 in DEBUG, models/webhooks.py ``validate``) would let the sender name the secret, so the
door refuses any request carrying it.

**The timestamp.** "Stripe generates the timestamp and signature each time we send an event"
and its libraries reject a timestamp older than five minutes ("Prevent replay attacks",
https://docs.stripe.com/webhooks#replay-attacks). The SDK checks only that side
(stripe-python ``WebhookSignature.verify_header``: ``timestamp < now - tolerance``), so a body
signed with a timestamp a year ahead would replay for a year. A genuine delivery is dated when
it is sent, so one dated further ahead than the tolerance is refused too; the Standard Webhooks
spec asks for the same two-sided window ("within some allowable tolerance of the current
timestamp", https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md).

**The size.** Stripe documents no maximum event size. Every event type can be sent to an
Amazon EventBridge destination ("Send events to Amazon EventBridge",
https://docs.stripe.com/event-destinations/eventbridge), whose entries are under 256 KB
("Calculating Amazon EventBridge PutEvents event entry size",
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html); the limit
(``STRIPE_WEBHOOK_MAX_BYTES``, 512 KiB by default) leaves twice that. A larger body is
refused with 413 before it is read.
"""

import ipaddress
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import stripe
from djstripe.models import WebhookEndpoint, WebhookEventTrigger

logger = logging.getLogger(__name__)

# The header dj-stripe reads a signing secret from in DEBUG; never honoured here.
DJSTRIPE_SECRET_HEADER = "X-Djstripe-Webhook-Secret"  # noqa: S105 - a header name
# Stripe's libraries' tolerance, both ways (see the module's docstring).
SIGNATURE_TOLERANCE_SECONDS: int = stripe.Webhook.DEFAULT_TOLERANCE
# Of a refused body, enough to tell what it was (an event's id and object come first in
# Stripe's JSON), never the whole of what anyone may post.
REFUSED_BODY_PREFIX_CHARS = 500
# The headers a refusal record keeps, each cut to this length.
REFUSED_HEADERS = ("Content-Length", "Content-Type", "Stripe-Signature", "User-Agent")
REFUSED_HEADER_CHARS = 500

# What every snapshot event has ("The Event object", https://docs.stripe.com/api/events/object)
# and dj-stripe reads without checking: a body missing one would fail inside its processing
# (a 500, and Stripe delivering it again for three days).
SNAPSHOT_FIELDS: tuple[tuple[str, type], ...] = (
    ("id", str),
    ("type", str),
    ("livemode", bool),
    ("created", int),
    ("data", dict),
)


class DeliveryRefused(Exception):
    """A delivery refused before anything of it is stored; ``message`` is the answer's body."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def delivery_signature_verify(
    *,
    body: bytes,
    signature: str | None,
    secrets: Iterable[str],
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """The secret (one of ``secrets``) that signed ``body``, if its timestamp is within
    ``tolerance`` seconds of ``now`` either way. Raises ``DeliveryRefused`` otherwise."""
    if not signature:
        raise DeliveryRefused("No Stripe-Signature header.")
    now = time.time() if now is None else now
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DeliveryRefused("The body is not UTF-8 text.") from None
    for secret in secrets:
        try:
            # tolerance=None: the SDK's one-sided age check is replaced by ours, below.
            stripe.WebhookSignature.verify_header(text, signature, secret, tolerance=None)
        except stripe.SignatureVerificationError:
            continue
        timestamp = _signed_timestamp(signature)
        if timestamp < now - tolerance:
            raise DeliveryRefused(
                f"Signed {int(now - timestamp)} s ago, more than the {tolerance} s allowed."
            )
        if timestamp > now + tolerance:
            raise DeliveryRefused(
                f"Dated {int(timestamp - now)} s ahead of this server's clock, more than the "
                f"{tolerance} s allowed."
            )
        return secret
    raise DeliveryRefused("Not signed with this endpoint's secret.")


def _signed_timestamp(signature: str) -> int:
    """The header's first ``t``, the one the SDK verified the signature with."""
    for item in signature.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            return int(value)
    raise DeliveryRefused("The Stripe-Signature header has no timestamp.")


def snapshot_event_read(*, body: bytes) -> dict[str, Any]:
    """The event in a signed snapshot delivery, if it has what every event has. Raises
    ``DeliveryRefused`` (nothing stored, nothing applied) otherwise."""
    event = delivery_json_read(body=body)
    missing = fields_missing(event, SNAPSHOT_FIELDS)
    if not isinstance((event.get("data") or {}).get("object"), dict):
        missing.append("data.object")
    if missing:
        raise DeliveryRefused(
            f"Signed, but not an event as Stripe sends them: no valid {', '.join(missing)}. "
            "Nothing was stored or applied."
        )
    return event


def fields_missing(value: dict[str, Any], fields: Iterable[tuple[str, type]]) -> list[str]:
    """The names of ``fields`` that ``value`` lacks or holds with another type."""
    return [name for name, kind in fields if not _is_a(value.get(name), kind)]


def _is_a(value: Any, kind: type) -> bool:
    # bool is an int to Python, but a "created" of true is not a time; an empty id is no id.
    if isinstance(value, bool) and kind is not bool:
        return False
    return isinstance(value, kind) and value != ""


def delivery_json_read(*, body: bytes) -> dict[str, Any]:
    """The JSON object a signed body holds. Raises ``DeliveryRefused`` otherwise."""
    try:
        value = json.loads(body)
    except ValueError:
        raise DeliveryRefused("Signed, but the body is not JSON.") from None
    if not isinstance(value, dict):
        raise DeliveryRefused("Signed, but the body is not a JSON object.")
    return value


def webhook_refusal_record(
    *,
    endpoint: WebhookEndpoint,
    headers: Mapping[str, str],
    body: bytes,
    remote_ip: str | None,
    reason: str,
) -> WebhookEventTrigger:
    """A short record of a delivery refused at the signature (dj-stripe's admin lists them
    under Webhook event triggers): the operator sees a wrong secret or a skewed clock there.
    Only a prefix of the body is kept: anyone can post one."""
    kept_headers = {
        name: headers[name][:REFUSED_HEADER_CHARS] for name in REFUSED_HEADERS if name in headers
    }
    exception_length = WebhookEventTrigger._meta.get_field("exception").max_length or 128
    logger.warning("Stripe webhook refused at endpoint %s: %s", endpoint.id, reason)
    return WebhookEventTrigger.objects.create(
        remote_ip=_valid_ip(remote_ip),
        headers=kept_headers,
        body=body[:REFUSED_BODY_PREFIX_CHARS].decode("utf-8", errors="replace"),
        valid=False,
        processed=False,
        exception=reason[:exception_length],
        webhook_endpoint=endpoint,
        stripe_trigger_account=endpoint.djstripe_owner_account,
    )


def _valid_ip(value: str | None) -> str:
    """The address as the column takes it (PostgreSQL's inet refuses anything else); a
    forwarded-for header that is not an address counts as unknown."""
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return "0.0.0.0"  # noqa: S104 - an unknown sender, not a bind address
