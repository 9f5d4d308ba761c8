"""The usage pages of the organisation the member acts for (``USAGE_VIEW``: every member's
usage, whoever made the key): a billing period (the running one or a past one) or any range,
per minute, hour or day, narrowed to one of its keys and an endpoint; the same as CSV. The
courtesy alert setting is ``ALERTS_MANAGE``'s."""

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST

from metering.alerts import account_alerts_opt_out_set
from metering.charts import bucket_label, cumulative_chart, outcomes_chart, units_chart
from metering.forms import AlertSettingsForm
from metering.selectors import (
    GRANULARITIES,
    MAX_EXPORT_RANGE,
    STEP,
    UsageParamError,
    UsageQuery,
    UsageSummary,
    account_endpoint_called,
    period_param,
    usage_query_parse,
    usage_range,
    usage_series,
    usage_summary,
)
from portal.models import Account, ApiKey
from portal.organisation_access import organisation_for
from portal.permissions import Action
from portal.principal import AuthenticatedHttpRequest


def _query(
    request: AuthenticatedHttpRequest, account: Account, keys: list[ApiKey], **limits
) -> UsageQuery:
    """The page's query; a key that is not one of the account's keys is a 404, as anything
    else of another account is. Other mistakes raise ``UsageParamError``."""
    by_id = {str(key.pk): key for key in keys}
    try:
        return usage_query_parse(
            request.GET, account=account, find_key=by_id.get, now=timezone.now(), **limits
        )
    except UsageParamError as error:
        if error.param in ("key", "endpoint"):
            raise Http404(error.message) from None
        raise


@login_required
@require_GET
def usage(request: AuthenticatedHttpRequest) -> HttpResponse:
    account = organisation_for(request, Action.USAGE_VIEW).account
    keys = list(ApiKey.objects.filter(account=account).order_by("name", "pk"))
    try:
        query = _query(request, account, keys)
    except UsageParamError as error:
        # A hand-edited address: say what was wrong, and show the running period instead.
        messages.error(request, f"{error.param}: {error.message}")
        return redirect(reverse("metering:usage"))

    now = timezone.now()
    key_id = query.key.pk if query.key else None
    summary = range_usage = None
    if query.period is not None:
        summary = usage_summary(
            account=account, now=now, key_id=key_id, endpoint=query.endpoint, period=query.period
        )
        endpoint_names = summary.endpoint_names
    else:
        range_usage = usage_range(
            account=account,
            start=query.start,
            end=query.end,
            key_id=key_id,
            endpoint=query.endpoint,
        )
        endpoint_names = range_usage.endpoint_names
    # An endpoint the account never called is not one of its filters (one it called at another
    # time shows zeros here, so a bookmarked filter survives a new period).
    if query.endpoint is not None and query.endpoint not in endpoint_names:
        if not account_endpoint_called(account_id=account.pk, endpoint=query.endpoint):
            raise Http404("This account never called that endpoint")
        endpoint_names = sorted([*endpoint_names, query.endpoint])

    points = list(
        usage_series(
            account_id=account.pk,
            start=query.start,
            end=query.end,
            granularity=query.granularity,
            key_id=key_id,
            endpoint=query.endpoint,
        )
    )
    filters = {
        name: value
        for name, value in (
            ("key", str(query.key.pk) if query.key else ""),
            ("endpoint", query.endpoint or ""),
        )
        if value
    }
    context = {
        "account": account,
        "query": query,
        "summary": summary,
        "range_usage": range_usage,
        "figures": summary or range_usage,
        "keys": keys,
        "selected_key": query.key,
        "selected_endpoint": query.endpoint,
        "endpoint_names": endpoint_names,
        "filtered": query.filtered,
        "points": points,
        "units_chart": units_chart(points, query.granularity, pace=_pace(summary, query)),
        "outcomes_chart": outcomes_chart(points, query.granularity),
        "rows": [(bucket_label(point.start, query.granularity), point) for point in points],
        "periods": [(period, period_param(period, query.periods)) for period in query.periods],
        "selected_period": period_param(query.period, query.periods) if query.period else "",
        "csv_url": f"{reverse('metering:usage-csv')}?{_same_query(request)}",
        "key_query": urlencode({"key": query.key.pk}) if query.key else "",
        # Drill-down links keep what is shown (the period or dates, and the granularity).
        "period_query": _shown_query(request),
        "granularity_choices": [(g, f"{g.capitalize()}") for g in GRANULARITIES],
        # The date inputs include their last day.
        "range_to": query.end - timedelta(microseconds=1),
        "filter_query": urlencode(filters),
    }
    if summary is not None:
        context.update(
            cumulative=cumulative_chart(summary, today=now.date()),
            percent=summary.percent_of_included,
            bar_percent=min(100.0, summary.percent_of_included),
        )
    return render(request, "metering/usage.html", context)


def _pace(summary: UsageSummary | None, query: UsageQuery) -> float | None:
    """The included units a bucket of a period spends at an even pace; None: no guide (a range,
    or minutes, whose pace would sit on the axis)."""
    if summary is None or query.granularity == "minute":
        return None
    buckets = (summary.period_end - summary.period_start) / STEP[query.granularity]
    return summary.included_units / max(1.0, buckets)


def _shown_query(request: AuthenticatedHttpRequest) -> str:
    """``period``/``from``/``to``/``granularity`` as a query string ending in ``&``, or ""."""
    wanted = ("period", "from", "to", "granularity")
    query = urlencode([(name, request.GET[name]) for name in wanted if request.GET.get(name)])
    return f"{query}&" if query else ""


def _same_query(request: AuthenticatedHttpRequest) -> str:
    """The page's own query string (its filters, period or range, and granularity)."""
    wanted = ("period", "from", "to", "granularity", "key", "endpoint")
    return urlencode([(name, request.GET[name]) for name in wanted if request.GET.get(name)])


CSV_HEADER = [
    "start",
    "end",
    "units",
    "requests",
    "refused_rate_limit",
    "refused_quota",
    "refused_spend_cap",
    "failed",
    "key",
    "endpoint",
]


class _Echo:
    """The file ``csv.writer`` writes to: each row comes back as a string to stream."""

    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def usage_csv(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """The usage page's series as CSV, its filters applied, streamed row by row: a long range
    of hours is never held in memory (the rows come from a server-side cursor)."""
    account = organisation_for(request, Action.USAGE_VIEW).account
    keys = list(ApiKey.objects.filter(account=account))
    try:
        query = _query(request, account, keys, max_range=MAX_EXPORT_RANGE)
    except UsageParamError as error:
        return HttpResponse(
            f"{error.param}: {error.message}\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    points = usage_series(
        account_id=account.pk,
        start=query.start,
        end=query.end,
        granularity=query.granularity,
        key_id=query.key.pk if query.key else None,
        endpoint=query.endpoint,
    )
    response = StreamingHttpResponse(
        _csv_lines(query, points), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{_csv_filename(query)}"'
    return response


def _csv_lines(query: UsageQuery, points: Iterable) -> Iterator[str]:
    writer = csv.writer(_Echo())
    key = query.key.prefix if query.key else "all"
    endpoint = query.endpoint or "all"
    yield writer.writerow(CSV_HEADER)
    step = STEP[query.granularity]
    for point in points:
        yield writer.writerow(
            [
                _iso(max(point.start, query.start)),
                _iso(min(point.start + step, query.end)),
                point.units,
                point.requests,
                point.refused_rate,
                point.refused_quota,
                point.refused_cap,
                point.errors,
                key,
                endpoint,
            ]
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _csv_filename(query: UsageQuery) -> str:
    """``meterdesk-usage-<from>-<to>-<granularity>[-<key prefix>][-<endpoint>].csv``: ASCII,
    the endpoint's slashes made dashes, so every browser keeps it as it is."""
    parts = [
        "meterdesk-usage",
        f"{query.start:%Y%m%dT%H%M}",
        f"{query.end:%Y%m%dT%H%M}",
        query.granularity,
    ]
    if query.key is not None:
        parts.append(query.key.prefix)
    if query.endpoint is not None:
        parts.append(query.endpoint.replace("/", "-"))
    return "-".join(parts) + ".csv"


@login_required
@require_POST
def alert_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The organisation's choice about the courtesy usage alert emails (below 100 %)."""
    account = organisation_for(request, Action.ALERTS_MANAGE).account
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
