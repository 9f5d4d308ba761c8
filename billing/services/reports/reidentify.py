"""A report Stripe rejected (or may have) after accepting the call, given a new identifier and
the account's current customer before an operator re-sends it."""

import logging
from datetime import datetime

from django.db import transaction
from djstripe.models import Subscription

from billing.models import MeterReport
from billing.services.reports.errors import MeterReportRefused
from billing.services.reports.ledger import _stripe_customer_id, _too_old_for_stripe
from billing.services.reports.windows import SUBSCRIBED, _subscription_starts
from portal.models import Account

logger = logging.getLogger(__name__)

# Stripe refused these (or may have) after accepting the call: an operator re-sends them under a
# new identifier, never the automatic runs.
NEEDS_NEW_IDENTIFIER = (MeterReport.Status.REJECTED, MeterReport.Status.SUSPECT)
# Stripe's error code for a meter event whose customer it does not know (or was deleted).
CUSTOMER_NOT_FOUND = "meter_event_customer_not_found"


def _reidentify(report: MeterReport, now: datetime) -> MeterReport:
    """Before an operator's re-send of a report Stripe rejected (or may have): a new identifier
    and the account's current Stripe customer, written before the call.

    Stripe keeps an identifier for at least 24 hours ("Create a billing meter event",
    https://docs.stripe.com/api/billing/meter-event/create); its documents do not say whether
    a refused event's identifier counts, and the emulator treats it like any other (a re-send
    would be answered "duplicate", and marked sent while never billed). So the re-send carries
    ``<first identifier>-r<n>``; the rejected ones stay in ``rejections``. The event's timestamp
    is the window's last second, unless it goes to another customer than the one it was first
    sent to (see ``_billed_from``).
    """
    if _too_old_for_stripe(report, now):
        raise MeterReportRefused(
            f"{report.identifier}: window older than Stripe accepts (35 days); settle it by hand."
        )
    customer_id = _stripe_customer_id(report.account)
    if not customer_id:
        raise MeterReportRefused(
            f"{report.identifier}: the account has no Stripe customer to send it to."
        )
    last = report.rejections[-1] if report.rejections else {}
    if last.get("code") == CUSTOMER_NOT_FOUND and last.get("customer") == customer_id:
        raise MeterReportRefused(
            f"{report.identifier}: Stripe did not find customer {customer_id}, which is still "
            "the account's customer; give the account a customer Stripe has first."
        )
    with transaction.atomic():
        locked = MeterReport.objects.select_for_update().get(pk=report.pk)
        if locked.status not in NEEDS_NEW_IDENTIFIER:
            return locked  # another re-send got here first
        rejections = list(locked.rejections)
        if not rejections or rejections[-1]["identifier"] != locked.identifier:
            # Suspect, not named by Stripe: the operator found it missing from the summary.
            rejections.append(
                {
                    "identifier": locked.identifier,
                    "customer": locked.stripe_customer_id,
                    "code": "not_in_meter_summary",
                    "message": "Re-sent by an operator who found it missing in Stripe.",
                    "event": None,
                    "at": now.isoformat(),
                }
            )
        locked.rejections = rejections
        previous = locked.identifier
        locked.identifier = locked.next_identifier()
        locked.stripe_customer_id = customer_id
        locked.status = MeterReport.Status.PENDING
        # Counts the tries of the current identifier (its 23-hour check runs from resent_at).
        locked.attempts = 0
        locked.resent_at = now
        locked.last_error = f"Re-sent as {locked.identifier}; Stripe refused {previous}."
        billed_from = (
            _billed_from(report.account, customer_id, now)
            if customer_id != rejections[0]["customer"]
            else None
        )
        if billed_from is not None and billed_from > locked.event_time:
            locked.not_before = billed_from
        locked.save()
    logger.warning("Usage report %s re-sent as %s to %s", previous, locked.identifier, customer_id)
    return locked


def _billed_from(account: Account, customer_id: str, now: datetime) -> datetime | None:
    """The earliest moment a meter event for ``customer_id`` is billed on an open invoice: the
    start of the current billing period of the account's running subscription, if that
    subscription is the customer's. None: the account has no running subscription (known here)
    for that customer, and the event keeps its timestamp.

    A report rejected because Stripe did not know its customer (deleted in the Dashboard, which
    also cancels the customer's subscriptions) is re-sent to the account's new customer, whose
    subscription started after the report's window. A metered price bills the usage dated from
    when it was put on the subscription; usage recorded before a subscription is billed only if
    the subscription is backdated ("Manage your usage-based billing setup", sections "Update
    prices mid-cycle" and "Create a backdated subscription",
    https://docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup), so at its
    own timestamp the event would reach the meter and no invoice. Dated at the start of the new
    subscription's current period instead (``MeterReport.not_before``), it is billed on that
    period's invoice. The trade-off: the units are billed in a later period than they were used
    in, at the price and against the included units of the tier subscribed now, rather than
    never.
    """
    if account.payment_status not in SUBSCRIBED or not account.stripe_subscription_id:
        return None
    subscription_id = account.stripe_subscription_id
    # dj-stripe's copy says whose subscription it is; without one, the account's own fields,
    # which billing.services.subscriptions sets from the same subscription, stand in.
    owner = (
        Subscription.objects.filter(id=subscription_id)
        .values_list("customer__id", flat=True)
        .first()
    )
    if owner is not None and owner != customer_id:
        return None
    period_start, _ = account.current_period(now)
    started = _subscription_starts([subscription_id]).get(subscription_id)
    return max(period_start, started) if started is not None else period_start
