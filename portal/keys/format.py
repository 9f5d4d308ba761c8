"""What an API key looks like: ``mdk_<live|test>_<8 lowercase alphanumerics>_<32 alphanumerics>``.

The fixed, recognisable start lets secret scanners (GitHub's, gitleaks) find leaked keys; the
8-character part makes the public prefix unique; the 32 characters after it (about 190 bits)
are the secret, of which only a SHA-256 is stored.
"""

import re
import secrets
import string

from django.conf import settings

KEY_RE = re.compile(r"^(mdk_(?:live|test)_[a-z0-9]{8})_([A-Za-z0-9]{32})$")
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
SECRET_ALPHABET = string.ascii_letters + string.digits


def key_start() -> str:
    """How every key this install issues starts: ``mdk_live_`` when Stripe runs in live mode,
    else ``mdk_test_`` (the docs' examples show the same)."""
    return "mdk_live_" if settings.STRIPE_LIVE_MODE else "mdk_test_"


def new_prefix() -> str:
    return key_start() + "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(8))


def new_secret() -> str:
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(32))


def split_key(raw: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key; None for anything else (checked without the DB)."""
    # fullmatch: with match, "$" would also accept a trailing newline.
    match = KEY_RE.fullmatch(raw)
    if match is None:
        return None
    return match.group(1), match.group(2)
