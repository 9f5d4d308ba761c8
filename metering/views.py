"""The developer's usage page: this period's usage as charts and tables, per key and endpoint."""

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from metering.alerts import account_alerts_opt_out_set
from metering.charts import cumulative_chart, daily_chart
from metering.forms import AlertSettingsForm
from metering.selectors import usage_summary
from portal.models import ApiKey
from portal.principal import AuthenticatedHttpRequest
from portal.services import account_ensure

# Endpoint names are identifiers declared by the API's views.
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


@login_required
def usage(request: AuthenticatedHttpRequest) -> HttpResponse:
    account = account_ensure(owner=request.user)
    keys = list(ApiKey.objects.filter(account=account).order_by("name", "pk"))

    # Filters are scoped to the account: a key id that is not one of its keys is a 404, as
    # anything else of another account is.
    key = None
    raw_key = request.GET.get("key", "")
    if raw_key:
        key = next((k for k in keys if str(k.pk) == raw_key), None)
        if key is None:
            raise Http404("No such API key")
    endpoint = request.GET.get("endpoint", "") or None
    if endpoint is not None and not ENDPOINT_NAME.match(endpoint):
        raise Http404("No such endpoint")

    now = timezone.now()
    summary = usage_summary(
        account=account, now=now, key_id=key.pk if key else None, endpoint=endpoint
    )
    endpoint_names = sorted({*summary.endpoint_names, *([endpoint] if endpoint else [])})
    return render(
        request,
        "metering/usage.html",
        {
            "account": account,
            "summary": summary,
            "keys": keys,
            "selected_key": key,
            "selected_endpoint": endpoint,
            "endpoint_names": endpoint_names,
            "filtered": key is not None or endpoint is not None,
            "cumulative": cumulative_chart(summary, today=now.date()),
            "daily": daily_chart(summary),
            "percent": summary.percent_of_included,
            "bar_percent": min(100.0, summary.percent_of_included),
        },
    )


@login_required
@require_POST
def alert_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The developer's choice about the courtesy usage alert emails (below 100 %)."""
    account = account_ensure(owner=request.user)
    form = AlertSettingsForm(request.POST)
    form.is_valid()  # one optional checkbox: any POST is valid, unchecked is False
    opted_out = not form.cleaned_data.get("courtesy_alerts", False)
    account_alerts_opt_out_set(account=account, opted_out=opted_out)
    messages.success(
        request,
        "Courtesy usage alerts are off; you still get an email at 100 % and above."
        if opted_out
        else "Courtesy usage alerts are on.",
    )
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("portal:dashboard")
    return redirect(target)
