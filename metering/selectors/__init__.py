"""Reads of usage, by topic: ``usage`` (a period's usage and quota, exactly, rolled up or
live), ``series`` (usage per minute, hour or day of a range), ``periods`` (an account's
billing periods, past and current), ``counts`` (what is counted beside units), ``query``
(what the usage pages and ``/v1/usage`` are asked for) and ``export`` (every rolled-up row of an
account, for its owner's download). The names other modules use are
published here."""

from metering.selectors.counts import OUTCOMES, Tally
from metering.selectors.export import USAGE_ROW_FIELDS, UsageRow, account_usage_rows
from metering.selectors.periods import (
    BillingPeriod,
    PeriodSwitch,
    account_billing_periods,
    billing_period_at,
)
from metering.selectors.query import (
    ENDPOINT_NAME,
    UsageParamError,
    UsageQuery,
    period_param,
    usage_query_parse,
)
from metering.selectors.series import (
    GRANULARITIES,
    MAX_EXPORT_RANGE,
    MAX_RANGE,
    STEP,
    Granularity,
    UsagePoint,
    bucket_start,
    usage_series,
)
from metering.selectors.usage import (
    DayUsage,
    EndpointUsage,
    KeyUsage,
    PeriodUsage,
    RangeUsage,
    UsageSummary,
    account_endpoint_called,
    accounts_period_usage,
    metering_redis_safety,
    period_credit_units,
    period_included_units,
    period_minutes,
    period_units,
    quota_seed_units,
    usage_range,
    usage_rolled_up_at,
    usage_summary,
)

__all__ = [
    "ENDPOINT_NAME",
    "GRANULARITIES",
    "MAX_EXPORT_RANGE",
    "MAX_RANGE",
    "OUTCOMES",
    "STEP",
    "USAGE_ROW_FIELDS",
    "BillingPeriod",
    "DayUsage",
    "EndpointUsage",
    "Granularity",
    "KeyUsage",
    "PeriodSwitch",
    "PeriodUsage",
    "RangeUsage",
    "Tally",
    "UsageParamError",
    "UsagePoint",
    "UsageQuery",
    "UsageRow",
    "UsageSummary",
    "account_billing_periods",
    "account_endpoint_called",
    "account_usage_rows",
    "accounts_period_usage",
    "billing_period_at",
    "bucket_start",
    "metering_redis_safety",
    "period_credit_units",
    "period_included_units",
    "period_minutes",
    "period_param",
    "period_units",
    "quota_seed_units",
    "usage_query_parse",
    "usage_range",
    "usage_rolled_up_at",
    "usage_series",
    "usage_summary",
]
