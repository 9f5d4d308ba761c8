"""Billing periods: monthly windows anchored on a start date, as Stripe anchors subscriptions."""

import calendar
from datetime import datetime


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later; the 31st becomes the last day of a short month."""
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_containing(anchor: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The monthly period [start, end) anchored on ``anchor`` that contains ``now``.

    Periods are counted from the anchor each time (not from the previous period's end) so a
    31st anchor comes back to the 31st after February, exactly as Stripe's billing anchor does.
    """
    months = (now.year - anchor.year) * 12 + (now.month - anchor.month)
    start = add_months(anchor, months)
    if start > now:
        months -= 1
    while True:
        start, end = add_months(anchor, months), add_months(anchor, months + 1)
        if start <= now < end:
            return start, end
        months += 1 if now >= end else -1
