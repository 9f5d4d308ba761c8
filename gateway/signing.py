"""The signature every proxied call carries, so an upstream can tell Meterdesk sent it.

The canonical string is seven lines joined by ``\\n`` (no trailing newline)::

    METHOD                      upper case, e.g. GET
    /path?query                 the path and query the upstream receives, as sent
    Meterdesk-Timestamp         Unix seconds
    Meterdesk-Account           the account's id
    Meterdesk-Key               the API key's public prefix
    Meterdesk-Tier              the tier's slug
    Meterdesk-Request-Id        32 hex characters

``Meterdesk-Signature`` is the lower-case hex HMAC-SHA256 of it (UTF-8) under the upstream's
signing secret. An upstream recomputes it, compares in constant time and refuses timestamps
more than five minutes from its clock (a replayed call). The body is not signed: it is
streamed, and signing it would mean holding it whole; docs/gateway.md says what that leaves
to TLS.
"""

import hashlib
import hmac
from collections.abc import Mapping

# The signed headers, in the canonical string's order (after method and path).
SIGNED_HEADERS = (
    "Meterdesk-Timestamp",
    "Meterdesk-Account",
    "Meterdesk-Key",
    "Meterdesk-Tier",
    "Meterdesk-Request-Id",
)
SIGNATURE_HEADER = "Meterdesk-Signature"
# How far an upstream should let a timestamp be from its clock.
MAX_SKEW_SECONDS = 300


def canonical_string(*, method: str, path_and_query: str, headers: Mapping[str, str]) -> str:
    return "\n".join([method.upper(), path_and_query, *(headers[name] for name in SIGNED_HEADERS)])


def signature(*, secret: str, method: str, path_and_query: str, headers: Mapping[str, str]) -> str:
    message = canonical_string(method=method, path_and_query=path_and_query, headers=headers)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
