"""The SECRET_KEY of an install that is not given one: random, made once, kept in a file.

Django signs sessions, password-reset and email-confirmation links with SECRET_KEY
(https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key), so a key anyone can read
in the source would let anyone forge them. Production must set SECRET_KEY (settings refuse to
start otherwise); every other install gets its own key on first start, readable only by its
owner, and keeps it, so sessions survive a restart of ``make run``.
"""

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# Django's own check (security.W009) wants 50 characters or more; token_urlsafe(50) gives 67.
KEY_BYTES = 50
MINIMUM_LENGTH = 50


def secret_key_read_or_create(path: Path) -> str:
    """The key in ``path``, written there first (mode 0600) if the file does not exist.

    Written to a temporary file in the same directory, then linked into place: a reader never
    sees a half-written key, and when two processes start at once (the web process and a
    worker), the first link wins and the other reads the winner's key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file readable and writable by its owner only (0600).
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key-")
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(KEY_BYTES) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            # When another process linked its key first, that key is the one.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if len(key) < MINIMUM_LENGTH:
        raise ImproperlyConfigured(
            f"{path} holds no usable SECRET_KEY (fewer than {MINIMUM_LENGTH} characters); "
            "delete it to have a new one made (signed-in sessions end), or set SECRET_KEY."
        )
    return key
