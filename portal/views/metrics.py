"""``/metrics``: Prometheus's scrape, behind a bearer token.

Unset ``METRICS_TOKEN``: 404, as if there were no such page. Otherwise ``Authorization: Bearer
<METRICS_TOKEN>`` is required (401 with ``WWW-Authenticate`` if it is missing or wrong),
compared in constant time. Prometheus sends it with ``authorization: {credentials: ...}`` (or
``bearer_token_file``) in the scrape config
(https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config).
"""

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder

from portal.observability.metrics import metrics_registry

REALM_HEADER = 'Bearer realm="metrics"'


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Bytes: compare_digest refuses str with non-ASCII characters, which a caller could send.
    return hmac.compare_digest(presented.strip().encode(), token.encode())


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are not enabled.")
    if not _bearer_matches(request, token):
        response = HttpResponse(
            "A valid bearer token is required.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = REALM_HEADER
        return response
    # The classic text format unless the scraper asks for OpenMetrics (prometheus-client's own
    # negotiation, as its exposition helpers do).
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(metrics_registry()), content_type=content_type)
