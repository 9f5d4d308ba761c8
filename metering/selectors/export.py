"""Every rolled-up usage row of an account, for its owner to download: per minute, key and
endpoint, exactly as billed, with the calls refused and failed beside the billed units.

An account with a long history has millions of rows, so they are read in chunks and handed
out one by one (a server-side cursor on PostgreSQL), never held in memory. The last two or
three minutes are still in the limiter's counters until the rollup job moves them: they are
not rows yet.
"""

from collections.abc import Iterator
from datetime import UTC
from typing import NamedTuple

from django.db.models import F

from metering.models import UsageRollup

# Rows fetched per round trip.
USAGE_ROWS_CHUNK = 2000


class UsageRow(NamedTuple):
    # The minute's start, UTC, ISO 8601.
    minute: str
    # The key's public prefix; "" when the key was deleted since.
    key_prefix: str
    endpoint: str
    units: int
    requests: int
    refused_rate: int
    refused_quota: int
    refused_cap: int
    errors: int


USAGE_ROW_FIELDS = list(UsageRow._fields)


def account_usage_rows(*, account_id: int) -> Iterator[UsageRow]:
    """Every rolled-up usage row of the account, oldest first."""
    rows = (
        UsageRollup.objects.filter(account_id=account_id)
        .order_by("minute", "endpoint", "api_key_id")
        .values_list(
            "minute",
            F("api_key__prefix"),
            "endpoint",
            "units",
            "requests",
            "refused_rate",
            "refused_quota",
            "refused_cap",
            "errors",
        )
    )
    for minute, prefix, *rest in rows.iterator(chunk_size=USAGE_ROWS_CHUNK):
        yield UsageRow(minute.astimezone(UTC).isoformat(), prefix or "", *rest)
