"""An account's billing periods, past and current, as a developer sees them on the usage page.

Two records make them up. ``portal.AccountPeriod`` rows say when a period began (signup, an
upgrade's first paid period, a renewal, a return to the free tier); between two rows run the
monthly periods of the earlier one, the last cut short where the next begins, as
``Account.current_period`` rolls them. Applied ``billing.TierSwitch`` rows say where a tier
switch split a period: the billing period goes on (Stripe keeps the subscription's cycle), only
the quota counts again from the switch minute, which is what ``Account.period_start`` holds then.
"""

from dataclasses import dataclass
from datetime import date, datetime

from django.utils import timezone

from billing.models import TierSwitch
from portal.models import Account, AccountPeriod
from portal.periods import add_months

# How far back periods are listed: two years of monthly periods.
MAX_PERIODS = 24


@dataclass(frozen=True, slots=True)
class PeriodSwitch:
    """A tier switch inside a billing period: the quota counts again from ``at``."""

    at: datetime
    tier_name: str
    included_units: int


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    start: datetime
    end: datetime
    # The tier the period began on; "" when not recorded.
    tier_name: str
    switches: tuple[PeriodSwitch, ...] = ()
    current: bool = False
    # The included units of the tier the period ended on (its last switch's, if any); None:
    # not recorded.
    included_units: int | None = None

    @property
    def start_date(self) -> date:
        return self.start.date()

    @property
    def quota_start(self) -> datetime:
        """Where the quota counts from: the last switch's minute, else the period's start."""
        return self.switches[-1].at if self.switches else self.start


@dataclass(frozen=True, slots=True)
class _Anchor:
    start: datetime
    # None: monthly from ``start``.
    end: datetime | None
    tier_name: str
    included_units: int | None


def account_billing_periods(
    account: Account, *, now: datetime | None = None, limit: int = MAX_PERIODS
) -> list[BillingPeriod]:
    """The account's billing periods up to the one running at ``now``, newest first (at most
    ``limit``): two queries, the period rows and the applied switches."""
    now = now or timezone.now()
    switches = [
        PeriodSwitch(at=at, tier_name=name, included_units=included)
        for at, name, included in TierSwitch.objects.filter(
            account=account, status=TierSwitch.Status.APPLIED, to_tier__isnull=False
        )
        .order_by("effective_at")
        .values_list("effective_at", "to_tier__name", "to_tier__included_units")
    ]
    anchors = _anchors(account, {switch.at for switch in switches})
    periods: list[BillingPeriod] = []
    for index, anchor in enumerate(anchors):
        cut = anchors[index + 1].start if index + 1 < len(anchors) else None
        periods.extend(_anchor_periods(anchor, cut=cut, now=now, switches=switches))
    periods = [period for period in periods if period.start <= now]
    if periods:
        last = periods[-1]
        periods[-1] = BillingPeriod(
            start=last.start,
            end=last.end,
            tier_name=last.tier_name,
            switches=last.switches,
            current=last.start <= now < last.end,
            included_units=last.included_units,
        )
    return list(reversed(periods))[:limit]


def _anchors(account: Account, switch_starts: set[datetime]) -> list[_Anchor]:
    """The recorded period starts, oldest first, and the account's own period when no row
    records it (an account made before the ledger or outside ``account_create``); a period
    start that is a switch's minute is a segment, not a period."""
    anchors = [
        _Anchor(
            start=row.start,
            end=row.end,
            tier_name=row.tier.name if row.tier else "",
            included_units=row.tier.included_units if row.tier else None,
        )
        for row in AccountPeriod.objects.filter(account=account)
        .select_related("tier")
        .order_by("start")
    ]
    starts = {anchor.start for anchor in anchors}
    own_start = account.period_start
    unrecorded = own_start not in starts and own_start not in switch_starts
    if unrecorded and (not anchors or own_start > anchors[-1].start):
        anchors.append(
            _Anchor(
                start=own_start,
                end=account.period_end,
                tier_name=account.tier.name,
                included_units=account.tier.included_units,
            )
        )
    return anchors


def _anchor_periods(
    anchor: _Anchor, *, cut: datetime | None, now: datetime, switches: list[PeriodSwitch]
) -> list[BillingPeriod]:
    """The periods one recorded start begins: its own, then monthly ones (as
    ``Account.current_period`` rolls them), until ``cut`` (the next recorded start) or the one
    running at ``now``."""
    periods: list[BillingPeriod] = []
    tier_name, included = anchor.tier_name, anchor.included_units
    start = anchor.start
    end = anchor.end if anchor.end is not None and anchor.end > start else add_months(start, 1)
    months = 1
    while True:
        if cut is not None and start >= cut:
            break
        if cut is not None:
            end = min(end, cut)
        inside = tuple(switch for switch in switches if start <= switch.at < end)
        if inside:
            included = inside[-1].included_units
        periods.append(
            BillingPeriod(
                start=start,
                end=end,
                tier_name=tier_name,
                switches=inside,
                included_units=included,
            )
        )
        if inside:
            tier_name = inside[-1].tier_name
        if end > now:
            break
        start = end
        while add_months(anchor.start, months) <= start:
            months += 1
        end = add_months(anchor.start, months)
    return periods


def billing_period_at(account: Account, moment: datetime) -> BillingPeriod | None:
    """The account's billing period that contains ``moment``; None: before its first one."""
    for period in account_billing_periods(account, now=max(moment, timezone.now())):
        if period.start <= moment < period.end:
            return period
    return None
