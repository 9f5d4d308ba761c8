"""Stripe's meter event summaries, read for the daily usage reconcile (``usage_reconcile``) and
the money audit (``money_audit``): the meter our reports go to, a customer's units over a span,
and the periods and figures both checks share.
"""

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import stripe
from django.conf import settings

from billing.models import MeterReport, Tier
from portal.models import Account

# Stripe finalizes a period's invoice about an hour after the period ends (its default grace).
FINALIZATION_GRACE = timedelta(hours=1)
# Reports the reporter is still working on.
IN_FLIGHT = (MeterReport.Status.PENDING, MeterReport.Status.FAILED)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _whole(value: Any) -> int:
    """A summary's ``aggregated_value`` (a float of summed whole numbers) as an int."""
    return int(Decimal(str(value or 0)).to_integral_value(rounding=ROUND_HALF_UP))


def usage_meter_id(*, client: stripe.StripeClient) -> str | None:
    """The id of the meter our reports go to: the one kept on the tiers by the tier sync, else
    the active meter with our event name. None: Stripe has none (nothing was ever reported)."""
    kept = Tier.objects.exclude(stripe_meter_id="").values_list("stripe_meter_id", flat=True)
    if meter_id := kept.first():
        return meter_id
    for meter in client.v1.billing.meters.list(
        params={"status": "active", "limit": 100}
    ).auto_paging_iter():
        if meter.event_name == settings.STRIPE_METER_EVENT_NAME:
            return meter.id
    return None


def summary_units(
    client: stripe.StripeClient, meter_id: str, customer_id: str, start: datetime, end: datetime
) -> int:
    """Stripe's units for the customer dated in [start, end), both on whole minutes."""
    if end <= start:
        return 0
    listing = client.v1.billing.meters.event_summaries.list(
        meter_id,
        params={"customer": customer_id, "start_time": epoch(start), "end_time": epoch(end)},
    )
    return sum(_whole(summary.aggregated_value) for summary in listing.data)


def summary_hours(
    client: stripe.StripeClient, meter_id: str, customer_id: str, start: datetime, end: datetime
) -> dict[datetime, int]:
    """Stripe's units per clock hour in [start, end), both on whole hours."""
    if end <= start:
        return {}
    listing = client.v1.billing.meters.event_summaries.list(
        meter_id,
        params={
            "customer": customer_id,
            "start_time": epoch(start),
            "end_time": epoch(end),
            "value_grouping_window": "hour",
            "limit": 100,
        },
    )
    return {
        datetime.fromtimestamp(summary.start_time, UTC): _whole(summary.aggregated_value)
        for summary in listing.auto_paging_iter()
    }


def previous_and_current_period(
    account: Account, now: datetime
) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """The account's period running at ``now``, and the one before it, as (previous, current)."""
    current = account.current_period(now)
    previous = account.current_period(current[0] - timedelta(microseconds=1))
    return previous, current
