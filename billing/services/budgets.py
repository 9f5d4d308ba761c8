"""A developer's budget for usage charges, and the emails at the amounts they chose.

The budget is advisory: it sends emails and refuses nothing. Calls are refused only by the
tier's spend cap (the limiter's quota, ``Tier.overage_cap_units``), which the budget may not
exceed. It counts the period's usage charges so far (``billing.projection``): the units past
the included ones at the tier's price, each stretch of a switched period at its own tier's,
exactly as the period's invoice will bill them; the base price is fixed and not counted.

Each alert amount is emailed once per billing period: the ``BudgetAlert`` row (unique per
account, period and amount) is claimed before the email goes, and each try takes the row with a
conditional update first, so two runs never send one alert, and a repeated run sends nothing.
The email goes to the organisation's alert recipients (its owners and billing members, and
whoever else opted in: ``portal.selectors.account_alert_recipients``).
"""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing.emails import budget_alert_email
from billing.models import Budget, BudgetAlert, Tier
from billing.money import money_text
from billing.projection import invoice_projection_for
from billing.selectors import SUBSCRIBED_STATUSES
from billing.services.errors import BillingError
from portal.models import Account

logger = logging.getLogger(__name__)

# A claimed alert still pending this long after its last try was left by a run that died: sent
# again (email is at least once in that window, never twice otherwise).
STUCK_AFTER = timedelta(minutes=10)
# At most this many alert amounts: an inbox, not a ticker.
MAX_ALERTS = 10


def budget_limit_cents(tier: Tier) -> int | None:
    """The most a budget on ``tier`` may be: its spend cap; None: no cap, any amount."""
    return tier.spend_cap_cents if tier.overage_cap_units() is not None else None


def budget_set(
    *,
    account: Account,
    amount_cents: int,
    alert_percents: list[int],
    alert_amounts_cents: list[int],
) -> Budget:
    """Set (or replace) the account's budget. Raises ``BillingError``, worded for the developer,
    when the tier bills no usage or an amount is out of bounds."""
    tier = account.subscribed_tier or account.tier
    if not tier.bills_usage:
        raise BillingError(
            f"{tier.name} bills no usage past its included units, so there is nothing to budget."
        )
    if amount_cents <= 0:
        raise BillingError("The budget must be more than zero.")
    limit = budget_limit_cents(tier)
    if limit is not None and amount_cents > limit:
        raise BillingError(
            f"The budget cannot be more than {tier.name}'s spend cap of {_money(limit, tier)}: "
            "past it, calls are refused and nothing more is billed."
        )
    percents = sorted(set(alert_percents))
    amounts = sorted(set(alert_amounts_cents))
    if any(p <= 0 or p > 200 for p in percents):
        raise BillingError("Alert percentages must be between 1 and 200.")
    if any(a <= 0 for a in amounts):
        raise BillingError("Alert amounts must be more than zero.")
    if limit is not None and any(a > limit for a in amounts):
        raise BillingError(
            f"An alert above the spend cap of {_money(limit, tier)} could never be reached."
        )
    if not percents and not amounts:
        raise BillingError("Choose at least one amount to be emailed at.")
    if len(percents) + len(amounts) > MAX_ALERTS:
        raise BillingError(f"Choose at most {MAX_ALERTS} alert amounts.")
    budget, _ = Budget.objects.update_or_create(
        account=account,
        defaults={
            "amount_cents": amount_cents,
            "alert_percents": percents,
            "alert_amounts_cents": amounts,
            "updated": timezone.now(),
        },
    )
    return budget


def budget_remove(*, account: Account) -> bool:
    """Remove the account's budget (its alerts stop); False when it had none."""
    deleted, _ = Budget.objects.filter(account=account).delete()
    return deleted > 0


def budget_alerts_send(*, now: datetime | None = None) -> list[BudgetAlert]:
    """The beat job: every subscribed account with a budget has its crossed amounts claimed
    and emailed. Returns the alerts handled."""
    now = now or timezone.now()
    account_ids = Budget.objects.filter(
        account__payment_status__in=SUBSCRIBED_STATUSES
    ).values_list("account_id", flat=True)
    handled: list[BudgetAlert] = []
    for account_id in account_ids:
        handled += budget_alerts_check(account_id=account_id, now=now)
    return handled


def budget_alerts_check(*, account_id: int, now: datetime | None = None) -> list[BudgetAlert]:
    """Claim the alerts of every amount the account's usage charges have reached this period,
    then send the claimed ones and retry the period's failed ones. Returns the alerts this call
    skipped (superseded) and the ones it tried to send."""
    now = now or timezone.now()
    account = (
        Account.objects.select_related("tier", "subscribed_tier", "owner", "budget")
        .filter(pk=account_id)
        .first()
    )
    budget = getattr(account, "budget", None) if account is not None else None
    if account is None or budget is None:
        return []
    projection = invoice_projection_for(account, now)
    if projection is None:
        return []
    spent = projection.usage_cents
    claimed = []
    for threshold in budget.alert_points_cents():
        if threshold > spent:
            break
        alert = _claim(account, budget, projection.period_start, threshold, spent)
        if alert is not None:
            claimed.append(alert)
    # Several amounts reached since the last run (a burst, a budget lowered): one email, the
    # highest, says it all; the lower ones are recorded as superseded.
    skipped = []
    for alert in claimed[:-1]:
        BudgetAlert.objects.filter(pk=alert.pk, status=BudgetAlert.Status.PENDING).update(
            status=BudgetAlert.Status.SKIPPED,
            last_error=f"Superseded by the {claimed[-1].threshold_cents}-cent alert.",
        )
        alert.refresh_from_db()
        skipped.append(alert)
    to_send = BudgetAlert.objects.filter(
        account=account, period_start=projection.period_start
    ).filter(
        Q(status=BudgetAlert.Status.FAILED)
        | Q(status=BudgetAlert.Status.PENDING, attempts=0)
        | Q(status=BudgetAlert.Status.PENDING, created__lt=now - STUCK_AFTER)
    )
    sent = [
        budget_alert_send(alert_id=pk, now=now)
        for pk in to_send.order_by("threshold_cents").values_list("pk", flat=True)
    ]
    return skipped + sent


def _claim(
    account: Account, budget: Budget, period_start: datetime, threshold: int, spent: int
) -> BudgetAlert | None:
    """The new alert row for this amount and period; None when it was claimed before."""
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                account=account,
                period_start=period_start,
                threshold_cents=threshold,
                spent_cents=spent,
                budget_cents=budget.amount_cents,
            )
    except IntegrityError:
        return None
    logger.info("Budget alert at %s cents claimed for account %s", threshold, account.pk)
    return alert


def budget_alert_send(*, alert_id: int, now: datetime | None = None) -> BudgetAlert:
    """Email one claimed alert. Each try takes the row first (a conditional update on its
    attempt count), so two runs never send the same alert at once."""
    now = now or timezone.now()
    alert = BudgetAlert.objects.select_related(
        "account__tier", "account__subscribed_tier", "account__owner"
    ).get(pk=alert_id)
    if alert.status not in (BudgetAlert.Status.PENDING, BudgetAlert.Status.FAILED):
        return alert
    taken = BudgetAlert.objects.filter(
        pk=alert.pk,
        attempts=alert.attempts,
        status__in=[BudgetAlert.Status.PENDING, BudgetAlert.Status.FAILED],
    ).update(attempts=F("attempts") + 1)
    if not taken:
        alert.refresh_from_db()
        return alert
    try:
        budget_alert_email(alert, invoice_projection_for(alert.account, now)).send()
    except Exception as exc:  # any mail backend failure: recorded, retried by the next run
        logger.warning("Budget alert %s not sent: %s", alert.pk, exc)
        BudgetAlert.objects.filter(pk=alert.pk).update(
            status=BudgetAlert.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
    else:
        BudgetAlert.objects.filter(pk=alert.pk).update(
            status=BudgetAlert.Status.SENT, sent_at=now, last_error=""
        )
    alert.refresh_from_db()
    return alert


def _money(cents: int, tier: Tier) -> str:
    return money_text(cents, tier.currency)
