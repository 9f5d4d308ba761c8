"""Reports in the usage ledger, written as the reporter writes them, for the tests of what reads
the ledger back (the usage reconcile, the money audit)."""

from datetime import datetime, timedelta

from django.conf import settings

from billing.models import MeterReport
from portal.models import Account
from tests.factories import MeterReportFactory


def window_report(
    account: Account, start: datetime, units: int, *, end: datetime | None = None, **fields
) -> MeterReport:
    """The account's report of [start, end) (an hour by default): its deterministic identifier,
    our meter's event name and the account's Stripe customer. ``fields``: status, sent_at…"""
    customer = account.stripe_customer
    return MeterReportFactory(
        account=account,
        window_start=start,
        window_end=end or start + timedelta(hours=1),
        units=units,
        identifier=MeterReport.identifier_for(account.pk, start),
        event_name=settings.STRIPE_METER_EVENT_NAME,
        stripe_customer_id=customer.id if customer else "",
        **fields,
    )
