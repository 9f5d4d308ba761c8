"""Fixtures for the usage reporter's tests: the emulator with Meterdesk's meter, subscribed
accounts that are Stripe customers there, and rolled-up usage at chosen minutes."""

from datetime import datetime, timedelta

import pytest
import stripe
from django.utils import timezone

from billing.models import MeterReport
from metering.models import UsageRollup
from portal.models import Account
from tests.factories import AccountFactory, PaidTierFactory, StripeCustomerFactory


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def reporting_stripe(stripe_emulator, settings, monkeypatch):
    """The emulator with the billing meter the reporter's events go to, our client pointed at
    it, and back-off short enough for tests (the waits are real, only shorter)."""
    settings.STRIPE_API_BASE = stripe_emulator.url
    settings.USAGE_REPORT_BACKOFF_MS = 10
    settings.USAGE_REPORT_GRACE_SECONDS = 300
    monkeypatch.setattr(stripe, "api_base", stripe_emulator.url)
    client = stripe.StripeClient("sk_test_reporting", base_addresses={"api": stripe_emulator.url})
    client.v1.billing.meters.create(
        params={
            "display_name": "API units",
            "event_name": settings.STRIPE_METER_EVENT_NAME,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )
    stripe_emulator.client = client
    return stripe_emulator


@pytest.fixture
def subscribed_account(reporting_stripe):
    """Make an account with a running subscription whose period started ``days_into_period``
    days ago, and a customer the emulator knows."""

    def make(*, days_into_period: float = 10, status=Account.PaymentStatus.ACTIVE, **fields):
        customer = reporting_stripe.client.v1.customers.create(params={"email": "dev@example.com"})
        start = timezone.now() - timedelta(days=days_into_period)
        return AccountFactory(
            tier=PaidTierFactory(),
            stripe_customer=StripeCustomerFactory(id=customer.id),
            stripe_subscription_id=f"sub_{customer.id[4:]}",
            payment_status=status,
            period_start=start,
            period_end=start + timedelta(days=30),
            **fields,
        )

    return make


def stripe_subscription_started(account: Account, started: datetime) -> None:
    """dj-stripe's copy of the account's subscription, as its webhooks leave it: the reporter
    reads when the subscription started from it."""
    from djstripe.models import Subscription

    assert account.stripe_customer is not None
    Subscription.objects.update_or_create(
        id=account.stripe_subscription_id,
        defaults={
            "customer": account.stripe_customer,
            "livemode": False,
            "stripe_data": {
                "id": account.stripe_subscription_id,
                "start_date": int(started.timestamp()),
            },
        },
    )


@pytest.fixture
def add_usage():
    """Roll up ``units`` for an account at a minute (as the rollup job would have)."""

    def add(account: Account, minute: datetime, units: int, endpoint: str = "lookup"):
        return UsageRollup.objects.create(
            account=account,
            endpoint=endpoint,
            minute=minute.replace(second=0, microsecond=0),
            units=units,
            requests=units,
        )

    return add


def stripe_total(emulator, account: Account) -> int:
    """Units Stripe (the emulator) accepted for the account's customer on our meter."""
    from django.conf import settings

    account.refresh_from_db()
    assert account.stripe_customer is not None
    return emulator.meter_event_total(account.stripe_customer.id, settings.STRIPE_METER_EVENT_NAME)


def reported_units(account: Account) -> int:
    return sum(
        MeterReport.objects.filter(account=account, status=MeterReport.Status.SENT).values_list(
            "units", flat=True
        )
    )
