"""``GET /v1/usage``: the calling key's account usage — a billing period (the running one by
default, or a past one) or any range, per minute, hour or day, narrowed to a key and an
endpoint. The parameters are read as the usage page reads them (``metering.selectors.query``)."""

from typing import Any

from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from metering.selectors import (
    GRANULARITIES,
    STEP,
    RangeUsage,
    UsageParamError,
    UsageSummary,
    usage_query_parse,
    usage_range,
    usage_series,
    usage_summary,
)
from portal.api.views import MeteredAPIView
from portal.models import Account, ApiKey


class UsageQuerySerializer(serializers.Serializer):
    period = serializers.CharField(
        required=False,
        max_length=40,
        help_text="current (the default), previous, or the start date of a past period "
        "(2026-11-01; the exact start, 2026-11-01T09:30:00Z, when two began that day). The "
        "periods member lists them. Not with from/to.",
    )
    granularity = serializers.ChoiceField(
        choices=list(GRANULARITIES),
        required=False,
        help_text="The series' buckets: minute (ranges up to 1 day), hour (up to 62 days) or "
        "day (up to 1,000 days). Default: hour for 2 days or less, else day.",
    )
    key = serializers.CharField(
        required=False,
        max_length=32,
        help_text="Only the usage of this key of your account, by its prefix (mdk_test_…).",
    )
    endpoint = serializers.CharField(
        required=False,
        max_length=100,
        help_text="Only the usage of this endpoint (lookup, compute…).",
    )

    def get_fields(self):
        # "from" and "to" are the parameters' names; "from" cannot be a class attribute.
        fields = super().get_fields()
        fields["from"] = serializers.CharField(
            required=False,
            max_length=40,
            help_text="Start of a range instead of a period, ISO 8601: a date (from its UTC "
            "midnight) or a date and time with an offset (2026-11-03T14:00:00Z).",
        )
        fields["to"] = serializers.CharField(
            required=False,
            max_length=40,
            help_text="End of the range (needs from), ISO 8601: a date is included whole; a "
            "date and time is excluded. Default: now.",
        )
        return fields


class DayUsageSerializer(serializers.Serializer):
    date = serializers.DateField(source="day")
    units = serializers.IntegerField()
    requests = serializers.IntegerField()
    cumulative_units = serializers.IntegerField(
        source="cumulative",
        help_text="Units counted against the quota so far (again from a tier switch's day).",
    )


class PointSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    units = serializers.IntegerField(help_text="Billed units.")
    requests = serializers.IntegerField(help_text="Billed calls.")
    refused_rate_limit = serializers.IntegerField(
        source="refused_rate", help_text="Calls refused with 429 over the rate limit."
    )
    refused_quota = serializers.IntegerField(help_text="Calls refused with 429 over the quota.")
    refused_spend_cap = serializers.IntegerField(
        source="refused_cap", help_text="Calls refused with 429 at the tier's spend cap."
    )
    failed = serializers.IntegerField(
        source="errors", help_text="Calls that failed, their units given back (not billed)."
    )


class EndpointUsageSerializer(serializers.Serializer):
    endpoint = serializers.CharField()
    units = serializers.IntegerField()
    requests = serializers.IntegerField()
    refused = serializers.IntegerField(help_text="Calls refused with 429, for any reason.")
    failed = serializers.IntegerField(source="errors", help_text="Calls that failed.")


class KeyUsageSerializer(serializers.Serializer):
    key_prefix = serializers.CharField(source="prefix", help_text="Empty for a deleted key.")
    name = serializers.CharField()
    units = serializers.IntegerField()
    requests = serializers.IntegerField()
    refused = serializers.IntegerField(help_text="Calls refused with 429, for any reason.")
    failed = serializers.IntegerField(source="errors", help_text="Calls that failed.")


class SwitchSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    tier = serializers.CharField(source="tier_name")


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    current = serializers.BooleanField()
    tier = serializers.CharField(
        source="tier_name", help_text="The tier the period began on; empty: not recorded."
    )
    switches = SwitchSerializer(many=True, help_text="Tier switches inside the period.")


class RangeSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class FiltersSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    endpoint = serializers.CharField(allow_null=True)


class UsageOutputSerializer(serializers.Serializer):
    period = PeriodSerializer(
        allow_null=True, help_text="The billing period shown; null: a from/to range."
    )
    range = RangeSerializer(help_text="What the figures cover: the period, or from/to.")
    granularity = serializers.ChoiceField(choices=list(GRANULARITIES))
    filters = FiltersSerializer()
    units = serializers.IntegerField(help_text="Billed units in the range (filters applied).")
    requests = serializers.IntegerField(help_text="Billed calls in the range (filters applied).")
    refused_rate_limit = serializers.IntegerField(help_text="Calls refused over the rate limit.")
    refused_quota = serializers.IntegerField(help_text="Calls refused over the quota.")
    refused_spend_cap = serializers.IntegerField(help_text="Calls refused at the spend cap.")
    failed = serializers.IntegerField(help_text="Calls that failed (not billed).")
    quota_since = serializers.DateTimeField(
        allow_null=True,
        help_text="Where the quota counts from: the period's start, or its last tier switch. "
        "null (and the quota members below too) for a from/to range.",
    )
    included_units = serializers.IntegerField(
        allow_null=True, help_text="Units the tier includes this period, credits added."
    )
    remaining_included_units = serializers.IntegerField(allow_null=True)
    overage_units = serializers.IntegerField(
        allow_null=True, help_text="Units past the included ones."
    )
    overage_policy = serializers.ChoiceField(
        choices=["block", "bill"],
        help_text="block: calls past the included units are refused; bill: they are billed.",
    )
    overage_cap_units = serializers.IntegerField(
        allow_null=True,
        help_text="Units past the included ones the spend cap allows; null: no cap.",
    )
    daily = DayUsageSerializer(
        many=True, allow_null=True, help_text="Every day of the period; null for a range."
    )
    series = PointSerializer(many=True, help_text="Every bucket of the range, zeros included.")
    endpoints = EndpointUsageSerializer(many=True)
    keys = KeyUsageSerializer(many=True)
    periods = PeriodSerializer(many=True, help_text="The account's periods, newest first.")


class UsageView(MeteredAPIView):
    """The key's account usage: a billing period (the running one unless ``period`` or
    ``from``/``to`` say otherwise) as totals, a series per minute, hour or day, every day, and
    every endpoint and key, with refused and failed calls beside the billed ones. Includes the
    last minutes not yet rolled up. Free: costs no units."""

    endpoint_name = "usage"
    cost = 0
    scope = "basic"
    input_serializer_class = UsageQuerySerializer
    output_serializer_class = UsageOutputSerializer

    def get(self, request):
        params = UsageQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        account = Account.objects.select_related("tier").get(pk=request.auth.account_id)
        now = timezone.now()
        try:
            query = usage_query_parse(
                params.validated_data,
                account=account,
                now=now,
                find_key=lambda prefix: ApiKey.objects.filter(
                    account=account, prefix=prefix
                ).first(),
            )
        except UsageParamError as error:
            raise ValidationError({error.param: [error.message]}) from None
        key_id = query.key.pk if query.key else None
        step = STEP[query.granularity]
        series = [
            {
                "start": max(point.start, query.start),
                "end": min(point.start + step, query.end),
                "units": point.units,
                "requests": point.requests,
                "refused_rate": point.refused_rate,
                "refused_quota": point.refused_quota,
                "refused_cap": point.refused_cap,
                "errors": point.errors,
            }
            for point in usage_series(
                account_id=account.pk,
                start=query.start,
                end=query.end,
                granularity=query.granularity,
                key_id=key_id,
                endpoint=query.endpoint,
            )
        ]
        body: dict[str, Any] = {
            "range": {"start": query.start, "end": query.end},
            "granularity": query.granularity,
            "filters": {
                "key": query.key.prefix if query.key else None,
                "endpoint": query.endpoint,
            },
            "series": series,
            "periods": query.periods,
            "overage_policy": account.tier.overage_policy,
        }
        if query.period is not None:
            summary = usage_summary(
                account=account,
                now=now,
                key_id=key_id,
                endpoint=query.endpoint,
                period=query.period,
            )
            figures: UsageSummary | RangeUsage = summary
            body.update(
                period=query.period,
                quota_since=summary.quota_start,
                included_units=summary.included_units,
                remaining_included_units=summary.remaining_included_units,
                overage_units=summary.overage_units,
                overage_cap_units=summary.overage_cap,
                daily=summary.days,
            )
        else:
            figures = usage_range(
                account=account,
                start=query.start,
                end=query.end,
                key_id=key_id,
                endpoint=query.endpoint,
            )
            body.update(
                period=None,
                quota_since=None,
                included_units=None,
                remaining_included_units=None,
                overage_units=None,
                overage_cap_units=None,
                daily=None,
            )
        body.update(
            units=figures.units,
            requests=figures.requests,
            refused_rate_limit=figures.refused_rate,
            refused_quota=figures.refused_quota,
            refused_spend_cap=figures.refused_cap,
            failed=figures.errors,
            endpoints=figures.endpoints,
            keys=figures.keys,
        )
        return Response(UsageOutputSerializer(body).data)
