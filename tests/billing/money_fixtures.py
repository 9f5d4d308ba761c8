"""Subscribed developers for the money tests, without Stripe: the projection reads only the
account, its tier and its usage (a switch reads dj-stripe's copy of the subscription too)."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from billing.models import Tier
from portal.models import Account
from tests.factories import PaidTierFactory, UsageRollupFactory


def capped_tier(**fields) -> Tier:
    """$29 a month, 1,000 units included, then half a cent a unit, at most $20 of usage."""
    defaults = {
        "name": "Capped",
        "base_price_cents": 2900,
        "included_units": 1000,
        "overage_unit_price_cents": Decimal("0.5"),
        "spend_cap_cents": 2000,
    }
    return PaidTierFactory(**{**defaults, **fields})


def subscribe(account: Account, tier: Tier, *, now: datetime | None = None) -> Account:
    """``account`` pays for ``tier``, ten days into a 30-day period."""
    start = (now or timezone.now()) - timedelta(days=10)
    Account.objects.filter(pk=account.pk).update(
        tier=tier,
        subscribed_tier=tier,
        payment_status=Account.PaymentStatus.ACTIVE,
        period_start=start,
        period_end=start + timedelta(days=30),
    )
    account.refresh_from_db()
    return account


def use(account: Account, units: int, *, at: datetime | None = None) -> None:
    """``units`` admitted and rolled up, an hour ago by default."""
    minute = (at or timezone.now() - timedelta(hours=1)).replace(second=0, microsecond=0)
    UsageRollupFactory(account=account, minute=minute, units=units, requests=units)
