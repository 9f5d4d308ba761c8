"""What an authenticator app computes: a TOTP code from the secret it was given.

Written from the RFCs, not with allauth's helper, so the tests check allauth against the
standard a phone follows: RFC 6238 (TOTP: HOTP over the count of 30-second steps since the Unix
epoch, https://www.rfc-editor.org/rfc/rfc6238) and RFC 4226 section 5.3 (HOTP: HMAC-SHA-1,
dynamic truncation, 6 digits, https://www.rfc-editor.org/rfc/rfc4226#section-5.3). The secret is
the base32 text allauth shows beside the QR code (the otpauth URI's ``secret``)."""

import base64
import hashlib
import hmac
import struct
import time

STEP_SECONDS = 30
DIGITS = 6


def totp_code(secret: str, *, at: float | None = None) -> str:
    """The code an authenticator app shows at ``at`` (now when None)."""
    moment = time.time() if at is None else at
    counter = int(moment) // STEP_SECONDS
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**DIGITS:0{DIGITS}d}"


def fresh_totp_code(secret: str, *, seconds_left: int = 5) -> str:
    """A code still valid for at least ``seconds_left`` seconds: waits for the next step when
    the current one is about to end, so a slow test does not post a code that just expired
    (allauth accepts the current step only, MFA_TOTP_TOLERANCE 0)."""
    remaining = STEP_SECONDS - time.time() % STEP_SECONDS
    if remaining < seconds_left:
        time.sleep(remaining + 0.05)
    return totp_code(secret)
