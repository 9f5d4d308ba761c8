"""What a usage page, its CSV export and ``GET /v1/usage`` are asked for: a billing period or a
range, a granularity, and a key and an endpoint to narrow to — read from query parameters the
same way everywhere, each mistake naming the parameter it is about.

Parameters:

- ``period``: ``current`` (the default), ``previous``, or the start of a past period as a date
  (``2026-11-01``; the latest period that began that day) or as the exact moment;
- ``from`` / ``to``: a range instead of a period, ISO 8601 dates (a day from its UTC midnight; a
  ``to`` date includes that day) or moments with an offset (``2026-11-03T14:00:00Z``); ``to``
  defaults to now;
- ``granularity``: ``minute``, ``hour`` or ``day`` (default: ``hour`` for two days or less,
  else ``day``), within a longest range for each;
- ``key``: one of the account's keys (its id on the pages, its prefix in the API);
- ``endpoint``: an endpoint's name.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from metering.selectors.periods import BillingPeriod, account_billing_periods
from metering.selectors.series import GRANULARITIES, MAX_RANGE, Granularity
from portal.models import Account, ApiKey

# Endpoint names are identifiers: the API's own (``lookup``) and proxied ones
# (``<upstream>/<operation>``).
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,100}$")
# Up to this range the default granularity is hours.
HOURLY_UP_TO = timedelta(days=2)


class UsageParamError(ValueError):
    """A query parameter that cannot be used; ``param`` names it, the message says why."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class UsageQuery:
    start: datetime
    end: datetime
    granularity: Granularity
    # The billing period asked for; None: a range (``from``/``to``).
    period: BillingPeriod | None
    periods: list[BillingPeriod]
    key: ApiKey | None
    endpoint: str | None

    @property
    def filtered(self) -> bool:
        return self.key is not None or self.endpoint is not None


def usage_query_parse(
    params: Mapping[str, str],
    *,
    account: Account,
    find_key: Callable[[str], ApiKey | None],
    now: datetime | None = None,
    max_range: Mapping[Granularity, timedelta] = MAX_RANGE,
) -> UsageQuery:
    """The query ``params`` ask for, or ``UsageParamError`` naming the first bad parameter.
    ``find_key`` finds one of the account's keys by what the ``key`` parameter holds."""
    now = now or timezone.now()
    periods = account_billing_periods(account, now=now)
    period: BillingPeriod | None = None
    raw_period = params.get("period", "").strip()
    raw_from, raw_to = params.get("from", "").strip(), params.get("to", "").strip()
    if raw_period and (raw_from or raw_to):
        raise UsageParamError("period", "Give either period or from/to, not both.")
    if raw_from or raw_to:
        if not raw_from:
            raise UsageParamError("from", "from is required with to.")
        start = _moment(raw_from, "from", end_of_day=False)
        end = _moment(raw_to, "to", end_of_day=True) if raw_to else now
        if end <= start:
            raise UsageParamError("to", "to must be after from.")
    else:
        period = _period(raw_period or "current", periods)
        start, end = period.start, period.end

    granularity = _granularity(params.get("granularity", "").strip(), end - start)
    if end - start > max_range[granularity]:
        longest = max_range[granularity].days
        raise UsageParamError(
            "granularity",
            f"A {granularity} series covers at most {longest} day{'' if longest == 1 else 's'}; "
            "pick a coarser granularity or a shorter range.",
        )

    key = None
    raw_key = params.get("key", "").strip()
    if raw_key:
        key = find_key(raw_key)
        if key is None or key.account_id != account.pk:
            raise UsageParamError("key", "No API key of this account matches it.")
    endpoint = params.get("endpoint", "").strip() or None
    if endpoint is not None and not ENDPOINT_NAME.match(endpoint):
        raise UsageParamError("endpoint", "Not an endpoint name.")
    return UsageQuery(
        start=start,
        end=end,
        granularity=granularity,
        period=period,
        periods=periods,
        key=key,
        endpoint=endpoint,
    )


def _moment(raw: str, param: str, *, end_of_day: bool) -> datetime:
    """A date (its UTC midnight; the next one for an inclusive end) or a moment with an
    offset."""
    try:
        day = parse_date(raw)
    except ValueError:
        day = None
    if day is not None:
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time(), tzinfo=UTC)
    try:
        moment = parse_datetime(raw)
    except ValueError:
        moment = None
    if moment is None:
        raise UsageParamError(
            param, "Not an ISO 8601 date or date and time (2026-11-03 or 2026-11-03T14:00:00Z)."
        )
    if timezone.is_naive(moment):
        raise UsageParamError(param, "A date and time needs its offset (Z or +01:00).")
    return moment.astimezone(UTC)


def _period(raw: str, periods: list[BillingPeriod]) -> BillingPeriod:
    """``current``, ``previous``, or the period that began on a date or at a moment."""
    if raw == "current":
        return periods[0]
    if raw == "previous":
        if len(periods) < 2:
            raise UsageParamError("period", "There is no previous period yet.")
        return periods[1]
    try:
        day: date | None = parse_date(raw)
        moment = None if day is not None else parse_datetime(raw)
    except ValueError:
        day = moment = None
    if day is None and (moment is None or timezone.is_naive(moment)):
        raise UsageParamError(
            "period", "Use current, previous, or the start date of a past period (2026-11-01)."
        )
    for period in periods:  # newest first: the latest period begun that day
        if (day is not None and period.start.astimezone(UTC).date() == day) or period.start == (
            moment
        ):
            return period
    raise UsageParamError("period", "No billing period of this account began then.")


def _granularity(raw: str, span: timedelta) -> Granularity:
    if not raw:
        return "hour" if span <= HOURLY_UP_TO else "day"
    for granularity in GRANULARITIES:
        if raw == granularity:
            return granularity
    raise UsageParamError("granularity", "Use minute, hour or day.")


def period_param(period: BillingPeriod, periods: list[BillingPeriod]) -> str:
    """The ``period`` value that names ``period``: its start date, or its exact start when
    another period began the same day."""
    same_day = [p for p in periods if p.start.date() == period.start.date()]
    if period.current:
        return "current"
    if len(same_day) == 1 or same_day[0] == period:
        return period.start.date().isoformat()
    return period.start.isoformat().replace("+00:00", "Z")
