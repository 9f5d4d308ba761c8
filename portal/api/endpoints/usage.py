"""``GET /v1/usage``: the calling key's account usage this billing period."""

from rest_framework import serializers
from rest_framework.response import Response

from metering.selectors import usage_summary
from portal.api.views import MeteredAPIView
from portal.models import Account


class DayUsageSerializer(serializers.Serializer):
    date = serializers.DateField(source="day")
    units = serializers.IntegerField()
    requests = serializers.IntegerField()
    cumulative_units = serializers.IntegerField(source="cumulative")


class EndpointUsageSerializer(serializers.Serializer):
    endpoint = serializers.CharField()
    units = serializers.IntegerField()
    requests = serializers.IntegerField()


class KeyUsageSerializer(serializers.Serializer):
    key_prefix = serializers.CharField(source="prefix", help_text="Empty for a deleted key.")
    name = serializers.CharField()
    units = serializers.IntegerField()
    requests = serializers.IntegerField()


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateTimeField(source="period_start")
    end = serializers.DateTimeField(source="period_end")


class UsageOutputSerializer(serializers.Serializer):
    period = PeriodSerializer(source="*")
    units = serializers.IntegerField(help_text="Billable units this period.")
    requests = serializers.IntegerField(help_text="Billable requests this period.")
    included_units = serializers.IntegerField(
        help_text="Units the tier includes this period, credits added."
    )
    remaining_included_units = serializers.IntegerField()
    overage_units = serializers.IntegerField(help_text="Units past the included ones.")
    overage_policy = serializers.ChoiceField(
        choices=["block", "bill"],
        help_text="block: calls past the included units are refused; bill: they are billed.",
    )
    overage_cap_units = serializers.IntegerField(
        source="overage_cap",
        allow_null=True,
        help_text="Units past the included ones the spend cap allows; null: no cap.",
    )
    daily = DayUsageSerializer(source="days", many=True)
    endpoints = EndpointUsageSerializer(many=True)
    keys = KeyUsageSerializer(many=True)


class UsageView(MeteredAPIView):
    """This billing period's usage of the key's account: totals, every day, every endpoint and
    key. Includes the last minutes not yet rolled up. Free: costs no units."""

    endpoint_name = "usage"
    cost = 0
    scope = "basic"
    output_serializer_class = UsageOutputSerializer

    def get(self, request):
        account = Account.objects.select_related("tier").get(pk=request.auth.account_id)
        summary = usage_summary(account=account)
        return Response(UsageOutputSerializer(summary).data)
