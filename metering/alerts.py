"""Usage alerts: an email at each of the tier's thresholds (80, 100 and 120 % of the included
units by default), at most once per threshold and period.

The unique ``UsageAlert`` row (account, period, threshold) is claimed before the email goes out,
so two runs at once, or a run repeated, cannot send a threshold twice; a period's new start
re-arms every threshold. A failed send leaves the row ``failed`` and the next run retries it; a
sent one is never sent again. Thresholds below 100 % are a courtesy the organisation may opt out
of (``Account.alerts_opt_out``): they are recorded as skipped. From 100 % on, the alert says the
account is being billed for overage or refused, so it always goes.

Each alert is one email to the organisation's alert recipients: its owners and billing members,
and whoever else opted in (``portal.selectors.account_alert_recipients``).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.models import Tier
from metering.models import UsageAlert, UsageRollup
from metering.selectors import period_included_units, period_units
from portal.models import Account
from portal.selectors import account_alert_recipients

logger = logging.getLogger(__name__)

# Thresholds from here on are about money or refused calls: sent whatever the opt-out says.
ESSENTIAL_FROM_PERCENT = 100
# A threshold is crossed only by new usage: accounts without any in this long are not looked at.
USAGE_LOOKBACK = timedelta(days=1)
# A claimed alert still pending after this long was claimed by a run that died before sending.
STUCK_AFTER = timedelta(minutes=10)


def alert_thresholds(tier: Tier) -> list[int]:
    """The tier's thresholds as whole percentages, ascending; entries that are not positive
    numbers (an operator's typo in the admin's JSON) are ignored rather than failing the job."""
    values = set()
    for value in tier.alert_thresholds or []:
        try:
            number = int(value)
        except (TypeError, ValueError):
            continue
        if number > 0:
            values.add(number)
    return sorted(values)


def usage_alert_due_accounts(*, now: datetime | None = None) -> list[int]:
    """Accounts to look at: recent usage (only usage crosses a threshold) or an alert to retry."""
    now = now or timezone.now()
    active = UsageRollup.objects.filter(minute__gte=now - USAGE_LOOKBACK).values("account_id")
    retry = UsageAlert.objects.filter(
        Q(status=UsageAlert.Status.FAILED)
        | Q(status=UsageAlert.Status.PENDING, created__lt=now - STUCK_AFTER)
    ).values("account_id")
    return list(
        Account.objects.filter(Q(pk__in=active) | Q(pk__in=retry))
        .filter(tier__included_units__gt=0)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def usage_alerts_check(*, account_id: int, now: datetime | None = None) -> list[UsageAlert]:
    """Claim the alerts of every threshold the account's period usage has crossed, then send
    the claimed ones and retry the current period's failed ones. Returns the alerts handled:
    the ones this call skipped (opted out, superseded) and the ones it tried to send."""
    now = now or timezone.now()
    account = Account.objects.select_related("tier", "owner").filter(pk=account_id).first()
    if account is None:
        return []
    period_start, period_end = account.current_period(now)
    included = period_included_units(account, period_start)
    if included <= 0:
        return []
    used = period_units(account.pk, period_start, period_end)
    claimed: list[UsageAlert] = []
    skipped: list[UsageAlert] = []
    for threshold in alert_thresholds(account.tier):
        if used * 100 < threshold * included:
            break
        alert, created = usage_alert_claim(
            account=account, period_start=period_start, threshold=threshold, units=used
        )
        if created:
            (claimed if alert.status == UsageAlert.Status.PENDING else skipped).append(alert)
    # Several thresholds crossed since the last run (a burst, or the first run): one email,
    # the highest, says it all; the lower ones are recorded as superseded, not sent.
    for alert in claimed[:-1]:
        UsageAlert.objects.filter(pk=alert.pk, status=UsageAlert.Status.PENDING).update(
            status=UsageAlert.Status.SKIPPED,
            last_error=f"Superseded by the {claimed[-1].threshold}% alert claimed at once.",
        )
        alert.refresh_from_db()
        skipped.append(alert)
    to_send = UsageAlert.objects.filter(account=account, period_start=period_start).filter(
        Q(status=UsageAlert.Status.FAILED)
        | Q(status=UsageAlert.Status.PENDING, attempts=0)
        | Q(status=UsageAlert.Status.PENDING, created__lt=now - STUCK_AFTER)
    )
    sent = [
        usage_alert_send(alert_id=pk, now=now)
        for pk in to_send.order_by("threshold").values_list("pk", flat=True)
    ]
    return skipped + sent


def usage_alert_claim(
    *, account: Account, period_start: datetime, threshold: int, units: int
) -> tuple[UsageAlert, bool]:
    """The alert row of this threshold and period, and whether this call created it (on the
    first crossing). The unique constraint makes this the one place "at most once" is decided."""
    opted_out = account.alerts_opt_out and threshold < ESSENTIAL_FROM_PERCENT
    alert, created = UsageAlert.objects.get_or_create(
        account=account,
        period_start=period_start,
        threshold=threshold,
        defaults={
            "units_at_claim": units,
            "status": UsageAlert.Status.SKIPPED if opted_out else UsageAlert.Status.PENDING,
        },
    )
    if created:
        logger.info(
            "Usage alert %s%% claimed for account %s (%s units)", threshold, account.pk, units
        )
    return alert, created


def usage_alert_send(*, alert_id: int, now: datetime | None = None) -> UsageAlert:
    """Email one claimed alert. Each try takes the row first (a conditional update on its
    attempt count), so two runs never send the same alert at once."""
    now = now or timezone.now()
    alert = UsageAlert.objects.select_related("account__tier", "account__owner").get(pk=alert_id)
    if alert.status not in (UsageAlert.Status.PENDING, UsageAlert.Status.FAILED):
        return alert
    taken = UsageAlert.objects.filter(
        pk=alert.pk,
        attempts=alert.attempts,
        status__in=[UsageAlert.Status.PENDING, UsageAlert.Status.FAILED],
    ).update(attempts=F("attempts") + 1)
    if not taken:
        alert.refresh_from_db()
        return alert
    try:
        usage_alert_email(alert, now=now).send()
    except Exception as exc:  # any mail backend failure: recorded, retried by the next run
        logger.warning(
            "Usage alert %s for account %s not sent: %s", alert.threshold, alert.account_id, exc
        )
        UsageAlert.objects.filter(pk=alert.pk).update(
            status=UsageAlert.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
    else:
        UsageAlert.objects.filter(pk=alert.pk).update(
            status=UsageAlert.Status.SENT, sent_at=now, last_error=""
        )
    alert.refresh_from_db()
    return alert


def usage_alert_email(alert: UsageAlert, *, now: datetime | None = None) -> EmailMultiAlternatives:
    """The alert's email (text and HTML): usage, quota, what happens next, where to upgrade."""
    account = alert.account
    tier = account.tier
    # None: the alert is about an earlier period, whose end the email does not state.
    period_end: datetime | None
    period_start, period_end = account.current_period(now or timezone.now())
    if period_start != alert.period_start:
        period_start, period_end = alert.period_start, None
    included = period_included_units(account, alert.period_start)
    context = {
        "account": account,
        "tier": tier,
        "threshold": alert.threshold,
        "units": alert.units_at_claim,
        "included": included,
        "percent": int(alert.units_at_claim * 100 / included) if included else 0,
        "period_start": period_start,
        "period_end": period_end,
        "bills_overage": tier.overage_policy == Tier.OveragePolicy.BILL,
        "overage_units": max(0, alert.units_at_claim - included),
        "overage_cost_cents": Decimal(max(0, alert.units_at_claim - included))
        * tier.overage_unit_price_cents,
        "overage_cap_units": tier.overage_cap_units(),
        "essential": alert.threshold >= ESSENTIAL_FROM_PERCENT,
        "upgrade_url": f"{settings.SITE_URL}{reverse('billing:pricing')}",
        "usage_url": f"{settings.SITE_URL}{reverse('metering:usage')}",
        "settings_url": f"{settings.SITE_URL}{reverse('portal:dashboard')}#usage-alerts",
    }
    subject = render_to_string("metering/email/usage_alert_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
        body=render_to_string("metering/email/usage_alert.txt", context),
        # One message to them all, as before teams: each sees who else was told.
        to=account_alert_recipients(account),
    )
    message.attach_alternative(
        render_to_string("metering/email/usage_alert.html", context), "text/html"
    )
    return message


def usage_alerts_run(*, now: datetime | None = None) -> list[UsageAlert]:
    """A whole run in this process (the management command); the task fans out instead."""
    now = now or timezone.now()
    handled: list[UsageAlert] = []
    for account_id in usage_alert_due_accounts(now=now):
        try:
            handled.extend(usage_alerts_check(account_id=account_id, now=now))
        except Exception:
            logger.exception("Usage alerts: account %s failed", account_id)
    return handled


@dataclass(frozen=True, slots=True)
class UsageStanding:
    """Where an account's usage stands against its quota at this moment: the rolled-up minutes
    and the limiter's live counters, as the usage page counts them. The banners read this, not
    the last alert sent, which lags by up to the alert job's interval (five minutes)."""

    units: int
    # The tier's included units plus the operator's credits for the period.
    included: int
    bills_overage: bool
    # Units past the included ones the spend cap pays for; None: no cap.
    overage_cap: int | None
    thresholds: list[int]
    period_end: datetime

    @property
    def percent(self) -> int:
        return self.units * 100 // self.included if self.included > 0 else 0

    @property
    def threshold(self) -> int | None:
        """The highest alert threshold the usage has crossed; None: none yet."""
        crossed = [t for t in self.thresholds if self.units * 100 >= t * self.included]
        return crossed[-1] if crossed and self.included > 0 else None

    @property
    def refused(self) -> bool:
        """Whether calls costing units are refused now (the quota of a block tier, or a bill
        tier's included units plus its spend cap, is spent)."""
        if self.included <= 0:
            return False
        if not self.bills_overage:
            return self.units >= self.included
        return self.overage_cap is not None and self.units >= self.included + self.overage_cap

    @property
    def over_included(self) -> bool:
        return self.included > 0 and self.units >= self.included


def usage_standing(account: Account, *, now: datetime | None = None) -> UsageStanding:
    """The account's usage in its current period against its quota, live counters included."""
    period_start, period_end = account.current_period(now or timezone.now())
    tier = account.tier
    return UsageStanding(
        units=period_units(account.pk, period_start, period_end),
        included=period_included_units(account, period_start),
        bills_overage=tier.overage_policy == Tier.OveragePolicy.BILL,
        overage_cap=tier.overage_cap_units(),
        thresholds=alert_thresholds(tier),
        period_end=period_end,
    )


def account_alerts_opt_out_set(*, account: Account, opted_out: bool) -> Account:
    """The developer's choice about the non-essential (below 100 %) usage alert emails."""
    if account.alerts_opt_out != opted_out:
        account.alerts_opt_out = opted_out
        account.save(update_fields=["alerts_opt_out"])
    return account
