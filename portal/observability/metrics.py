"""What one scrape of ``/metrics`` reports.

The counters and histograms of this process (``REGISTRY``: the hot path's, registered when
``metering.hotpath`` is imported, and prometheus-client's process and platform collectors), or,
when ``PROMETHEUS_MULTIPROC_DIR`` is set, every gunicorn worker's, summed from the files they
write there; then the gauges read from the database and the limiter at scrape time, by the
collectors ``settings.METRICS_COLLECTORS`` names (billing's and metering's own modules, which
the portal reaches only through that setting).

Multi-process mode (https://prometheus.github.io/client_python/multiprocess/): the variable must
name an empty directory, set in the environment before the server starts (prometheus-client
reads it when first imported) and wiped between runs; gunicorn's config needs
``child_exit = lambda server, worker: multiprocess.mark_process_dead(worker.pid)``. In that mode
the process and platform collectors are left out, as the library's docs say.
"""

import os

from django.conf import settings
from django.utils.module_loading import import_string
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector


def metrics_registry() -> CollectorRegistry:
    """A registry for one scrape (built each time: cheap, and nothing is registered twice)."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    for path in settings.METRICS_COLLECTORS:
        registry.register(import_string(path)())
    return registry
