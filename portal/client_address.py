"""The address of the client behind a request, read through the proxies we run.

Every per-address limit keys on this: django-ratelimit's ``"ip"`` key (``RATELIMIT_IP_META_KEY``
names this module) and allauth's own limits (``portal.adapters.AccountAdapter.get_client_ip``).

``TRUSTED_PROXY_COUNT`` is how many ``X-Forwarded-For`` entries, counted from the right, our own
proxies append. Each proxy appends the address it received the request from, so the N-th entry
from the right was written by the outermost proxy we run and is the client's address; anything
left of it came from the client and is never read, so forged entries change nothing. 0 (the
default) ignores the header: the app is reached directly and ``REMOTE_ADDR`` is the client.

A header with fewer than N entries did not come through all our proxies (the app or an inner
proxy was reached directly, or a proxy replaces the header instead of appending), so none of its
entries can be trusted: the request is counted under ``REMOTE_ADDR``, the nearest hop. Such
requests share one bucket, which limits them harder, never lets them out of the limit.

The header's format: nginx ``$proxy_add_x_forwarded_for`` appends ``$remote_addr``
(https://nginx.org/en/docs/http/ngx_http_proxy_module.html#var_proxy_add_x_forwarded_for); an
AWS Application Load Balancer appends the client's address in its default ``append`` mode
(https://docs.aws.amazon.com/elasticloadbalancing/latest/application/x-forwarded-headers.html),
with ``:port`` if ``routing.http.xff_client_port.enabled``; Google Cloud's external Application
Load Balancer appends two, ``<client IP>, <load balancer IP>``
(https://cloud.google.com/load-balancing/docs/https, "X-Forwarded-For header").
"""

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger(__name__)

# Where requests go whose address cannot be read at all (REMOTE_ADDR empty, as behind a proxy
# on a Unix socket with TRUSTED_PROXY_COUNT=0): one shared bucket, rather than no limit or a 500
# (django-ratelimit raises ImproperlyConfigured on an empty address).
UNKNOWN_CLIENT = "0.0.0.0"  # noqa: S104 (a bucket name, nothing binds to it)


def client_address(request: HttpRequest) -> str:
    """The client's IP address, normalised (``2001:DB8::1`` → ``2001:db8::1``)."""
    trusted = settings.TRUSTED_PROXY_COUNT
    entries = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    if trusted and len(entries) >= trusted:
        # Written by our outermost proxy; only a misbehaving one puts something unreadable there.
        address = _parse(entries[-trusted])
        if address is not None:
            return address
    return _nearest_hop(request)


def _nearest_hop(request: HttpRequest) -> str:
    address = _parse(request.META.get("REMOTE_ADDR", ""))
    if address is None:
        logger.warning(
            "No client address in REMOTE_ADDR (%r); behind a proxy on a Unix socket, set "
            "TRUSTED_PROXY_COUNT. Counting the request under %s.",
            request.META.get("REMOTE_ADDR"),
            UNKNOWN_CLIENT,
        )
        return UNKNOWN_CLIENT
    return address


def _parse(entry: str) -> str | None:
    """An address as proxies write it (``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443``,
    ``2001:db8::1``), without port or IPv6 zone; None if it is not an address."""
    text = entry.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text.partition("%")[0]))
    except ValueError:
        return None
