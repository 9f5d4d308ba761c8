"""The dashboard's usage card: the last 24 hours' calls by outcome, hour by hour, and a way
into the usage page."""

from datetime import timedelta

from django import template
from django.utils import timezone

from metering.charts import outcomes_chart
from metering.selectors import Tally, usage_series
from portal.models import Account

register = template.Library()


@register.inclusion_tag("metering/usage_glance.html")
def usage_glance(account: Account) -> dict:
    """Billed, refused and failed calls of the last 24 hours (the current hour included), as
    a small chart of hours and its totals: one query and one limiter read."""
    now = timezone.now()
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    points = list(
        usage_series(
            account_id=account.pk, start=end - timedelta(hours=24), end=end, granularity="hour"
        )
    )
    total = Tally()
    for point in points:
        total.add(
            Tally(
                units=point.units,
                requests=point.requests,
                refused_rate=point.refused_rate,
                refused_quota=point.refused_quota,
                refused_cap=point.refused_cap,
                errors=point.errors,
            )
        )
    return {
        "chart": outcomes_chart(points, "hour"),
        "chart_id": "glance",
        "total": total,
    }
