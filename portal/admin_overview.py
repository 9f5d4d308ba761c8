"""The operators' overview at the top of the admin's index: the business at a glance, each
figure a link to the admin list it counts.

- monthly recurring revenue and subscriptions by tier (``billing.overview``);
- signups and paying conversions per week, the last ``WEEKS`` weeks;
- units per day over the last ``TREND_DAYS`` days, a server-side SVG (``metering.overview``);
- accounts near their quota, past due or unpaid, and with usage reports that need an operator.

A fixed number of queries whatever the number of accounts (tests/portal/test_admin_overview.py
counts them). The list filters that the links open live here too, beside the figures they
must agree with: each filter narrows the list with the very read that counted the figure.

This module sits beside ``portal.admin_site`` rather than in the ``portal.admin`` package for the
reason that module gives: the site imports it, and importing from ``portal.admin`` would run that
package's registrations before the site exists.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from billing.models import MeterReport, Tier
from billing.overview import (
    REPORT_ATTENTION_STATUSES,
    ReportAttention,
    TierRevenue,
    accounts_converted_between,
    accounts_subscribed_to,
    accounts_with_reports_needing_attention,
    conversions_per_week,
    mrr_by_currency,
    reports_needing_attention,
    revenue_by_tier,
    week_start,
)
from metering.overview import (
    NearQuota,
    UsageTrend,
    accounts_near_quota,
    accounts_near_quota_filter,
    usage_per_day,
)
from portal.models import Account

WEEKS = 12
TREND_DAYS = 30
NEAR_QUOTA_PERCENT = 80
# The overview lists this many accounts near their quota; the link opens all of them.
NEAR_QUOTA_SHOWN = 10


def _account_list(**params: Any) -> str:
    return f"{reverse('admin:portal_account_changelist')}?{urlencode(params)}"


def _week_bounds(monday: date) -> tuple[datetime, datetime]:
    start = datetime.combine(monday, time(), tzinfo=UTC)
    return start, start + timedelta(days=7)


# --- The list filters the overview's links open -------------------------------------------------


def _recent_weeks() -> list[tuple[str, str]]:
    """The overview's weeks as a list filter's choices, newest first."""
    this_week = week_start(timezone.now().astimezone(UTC).date())
    weeks = [this_week - timedelta(weeks=back) for back in range(WEEKS)]
    return [(monday.isoformat(), f"Week of {monday:%b} {monday.day}") for monday in weeks]


class SubscribedTierFilter(admin.SimpleListFilter):
    """Accounts whose subscription Stripe bills for a tier, as the overview counts them (the
    ``tier`` filter differs: a past-due account past its grace is on the free tier while its
    subscription still names the paid one)."""

    title = "subscription"
    parameter_name = "subscribed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (str(pk), f"Subscribed to {name}")
            for pk, name in Tier.objects.filter(base_price_cents__gt=0).values_list("pk", "name")
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Account]) -> QuerySet[Account]:
        value = self.value()
        if not value or not value.isdigit():
            return queryset
        return accounts_subscribed_to(queryset, int(value))


class ConvertedWeekFilter(admin.SimpleListFilter):
    """Accounts whose first paying subscription started in a week (its Monday, UTC)."""

    title = "paying since (week of)"
    parameter_name = "converted_week"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return _recent_weeks()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Account]) -> QuerySet[Account]:
        value = self.value()
        if not value:
            return queryset
        try:
            monday = week_start(date.fromisoformat(value))
        except ValueError:
            return queryset.none()
        return accounts_converted_between(queryset, *_week_bounds(monday))


class SignupWeekFilter(admin.SimpleListFilter):
    """Accounts that signed up in a week (its Monday, UTC)."""

    title = "signed up (week of)"
    parameter_name = "signup_week"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return _recent_weeks()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Account]) -> QuerySet[Account]:
        value = self.value()
        if not value:
            return queryset
        try:
            start, end = _week_bounds(week_start(date.fromisoformat(value)))
        except ValueError:
            return queryset.none()
        return queryset.filter(created__gte=start, created__lt=end)


class AttentionFilter(admin.SimpleListFilter):
    """Accounts near their quota this period, or with usage reports that need an operator."""

    title = "needs attention"
    parameter_name = "attention"
    NEAR_QUOTA = "near_quota"
    REPORTS = "reports"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (self.NEAR_QUOTA, f"At {NEAR_QUOTA_PERCENT} % of quota or more"),
            (self.REPORTS, "Usage reports failed, stale or rejected"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Account]) -> QuerySet[Account]:
        if self.value() == self.NEAR_QUOTA:
            return accounts_near_quota_filter(queryset, percent=NEAR_QUOTA_PERCENT)
        if self.value() == self.REPORTS:
            return accounts_with_reports_needing_attention(queryset)
        return queryset


# --- The figures ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierRow:
    revenue: TierRevenue
    url: str


@dataclass(frozen=True, slots=True)
class WeekRow:
    monday: date
    signups: int
    conversions: int
    signups_url: str
    conversions_url: str


@dataclass(frozen=True, slots=True)
class Attention:
    """One count an operator acts on, and the list it opens."""

    label: str
    count: int
    url: str


@dataclass(frozen=True, slots=True)
class OperatorOverview:
    tiers: list[TierRow]
    # Whole cents per currency.
    mrr: dict[str, int]
    subscriptions: int
    weeks: list[WeekRow]
    trend: UsageTrend
    near_quota: list[NearQuota]
    near_quota_count: int
    near_quota_percent: int
    near_quota_url: str
    attention: list[Attention]
    reports: ReportAttention
    report_links: list[Attention]

    @property
    def report_links_found(self) -> list[Attention]:
        """The report statuses that have reports, to list in a sentence."""
        return [link for link in self.report_links if link.count]


def signups_per_week(*, mondays: list[date]) -> dict[date, int]:
    """Accounts created in each of these weeks (Monday, UTC; oldest first); one query. A
    conditional count per week rather than a ``GROUP BY`` of each row's week: plain
    comparisons the database evaluates itself (SQLite would truncate every row's date in
    Python)."""
    weeks = [_week_bounds(monday) for monday in mondays]
    counts = Account.objects.filter(created__gte=weeks[0][0], created__lt=weeks[-1][1]).aggregate(
        **{
            f"week_{n}": Count("pk", filter=Q(created__gte=start, created__lt=end))
            for n, (start, end) in enumerate(weeks)
        }
    )
    return {monday: counts[f"week_{n}"] for n, monday in enumerate(mondays)}


def _payment_counts() -> dict[str, int]:
    return dict(
        Account.objects.filter(
            payment_status__in=(Account.PaymentStatus.PAST_DUE, Account.PaymentStatus.UNPAID)
        )
        .values("payment_status")
        .annotate(count=Count("pk"))
        .values_list("payment_status", "count")
        .order_by()
    )


def operator_overview(*, now: datetime | None = None) -> OperatorOverview:
    """Every figure of the overview, with the links to the lists behind them."""
    now = now or timezone.now()
    this_week = week_start(now.astimezone(UTC).date())
    mondays = [this_week - timedelta(weeks=back) for back in range(WEEKS - 1, -1, -1)]
    signups = signups_per_week(mondays=mondays)
    conversions = conversions_per_week(since=mondays[0])
    tiers = revenue_by_tier()
    near_quota = accounts_near_quota(percent=NEAR_QUOTA_PERCENT, now=now)
    payments = _payment_counts()
    reports = reports_needing_attention()
    report_list = reverse("admin:billing_meterreport_changelist")
    near_quota_url = _account_list(attention=AttentionFilter.NEAR_QUOTA)
    return OperatorOverview(
        tiers=[TierRow(tier, _account_list(subscribed=tier.tier_id)) for tier in tiers],
        mrr=mrr_by_currency(tiers),
        subscriptions=sum(tier.subscriptions for tier in tiers),
        weeks=[
            WeekRow(
                monday=monday,
                signups=signups.get(monday, 0),
                conversions=conversions.get(monday, 0),
                signups_url=_account_list(signup_week=monday.isoformat()),
                conversions_url=_account_list(converted_week=monday.isoformat()),
            )
            for monday in reversed(mondays)
        ],
        trend=usage_per_day(days=TREND_DAYS, now=now),
        near_quota=near_quota[:NEAR_QUOTA_SHOWN],
        near_quota_count=len(near_quota),
        near_quota_percent=NEAR_QUOTA_PERCENT,
        near_quota_url=near_quota_url,
        attention=[
            Attention(
                f"Near quota ({NEAR_QUOTA_PERCENT} % or more)", len(near_quota), near_quota_url
            ),
            Attention(
                "Past due",
                payments.get(Account.PaymentStatus.PAST_DUE, 0),
                _account_list(payment_status__exact=Account.PaymentStatus.PAST_DUE),
            ),
            Attention(
                "Unpaid",
                payments.get(Account.PaymentStatus.UNPAID, 0),
                _account_list(payment_status__exact=Account.PaymentStatus.UNPAID),
            ),
            Attention(
                "With usage reports that need an operator",
                reports.accounts,
                _account_list(attention=AttentionFilter.REPORTS),
            ),
        ],
        reports=reports,
        report_links=[
            Attention(
                MeterReport.Status(status).label,
                reports.by_status[status],
                f"{report_list}?{urlencode({'status__exact': status})}",
            )
            for status in REPORT_ATTENTION_STATUSES
        ],
    )
