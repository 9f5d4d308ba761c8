"""Settings of bench/report_usage.py: the benches' settings (bench/_settings.py) with the
in-process limiter and cache, and quiet logs."""

import os

os.environ.pop("REDIS_URL", None)
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench._settings import *  # noqa: F403
