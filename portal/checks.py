"""System checks of how this install is served (``manage.py check``; runserver, and so
``manage.py serve``, runs them at start).

The embedded mode (PRODUCTION off) is for one machine: plain HTTP with cookies that are not
marked secure, the Stripe emulator instead of Stripe, emails written to files. Reachable by
others, it is a portal with none of production's safeguards, so the check warns when the site
accepts a host name other than this machine's own (Django answers only the hosts in
ALLOWED_HOSTS: https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts).
"""

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

# "localhost" and every name under it stay on the loopback (RFC 6761, section 6.3); testserver
# is the name Django's test client sends, which nothing outside the test process reaches.
LOOPBACK_NAMES = ("localhost", "testserver")

EXPOSED_HINT = (
    "The embedded mode is for one machine: plain HTTP, session cookies not marked secure, the "
    "Stripe emulator and emails written to files. To serve others, run it as production "
    "(PRODUCTION=true with SECRET_KEY, ALLOWED_HOSTS, PostgreSQL, Redis and Stripe keys; see "
    "the README); otherwise keep ALLOWED_HOSTS and --host to localhost, 127.0.0.1 or ::1."
)


def is_loopback(host: str) -> bool:
    """Whether a host name or address (as ALLOWED_HOSTS or ``--host`` write it: "[::1]",
    ".localhost" for its subdomains) reaches only this machine."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name.removeprefix(".") in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another name, or a pattern such as "*"


def hosts_exposed(hosts: Iterable[str]) -> list[str]:
    """The hosts that reach beyond this machine, when PRODUCTION is off (none otherwise)."""
    if settings.PRODUCTION:
        return []
    return [host for host in hosts if not is_loopback(host)]


def exposure_warning(*, exposed: list[str], setting: str) -> CheckWarning:
    return CheckWarning(
        f"PRODUCTION is off, but {setting} lets other machines reach this site: "
        f"{', '.join(exposed)}.",
        hint=EXPOSED_HINT,
        id="portal.W001",
    )


@register(Tags.security)
def embedded_mode_exposed(app_configs=None, **kwargs) -> list[CheckMessage]:
    exposed = hosts_exposed(settings.ALLOWED_HOSTS)
    return [exposure_warning(exposed=exposed, setting="ALLOWED_HOSTS")] if exposed else []
