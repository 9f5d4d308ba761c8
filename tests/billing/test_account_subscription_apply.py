"""billing.services.account_subscription_apply: a subscription's state on Stripe, applied to
the account. Subscriptions are given in Stripe's dahlia shape (periods on the items)."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.services.subscriptions import account_subscription_apply
from metering.selectors import period_minutes
from tests.factories import AccountFactory


def _subscription(sub_id: str, status: str, tier, **extra) -> dict:
    now = int(time.time())
    price = {"id": tier.stripe_base_price.id, "product": tier.stripe_product.id}
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": "cus_x",
        "status": status,
        "cancel_at_period_end": False,
        "created": now,
        "metadata": {},
        "items": {
            "data": [
                {
                    "price": price,
                    "current_period_start": now,
                    "current_period_end": now + 30 * 86400,
                }
            ]
        },
        **extra,
    }


@pytest.mark.django_db
def test_an_old_subscriptions_late_cancellation_does_not_downgrade(catalog):
    account = AccountFactory()
    account_subscription_apply(
        account=account, subscription=_subscription("sub_new", "active", catalog.team)
    )

    changes = account_subscription_apply(
        account=account, subscription=_subscription("sub_old", "canceled", catalog.pro)
    )

    assert changes == {}
    assert (account.tier, account.stripe_subscription_id) == (catalog.team, "sub_new")


@pytest.mark.django_db
def test_a_trial_gets_the_tier(catalog):
    account = AccountFactory()

    account_subscription_apply(
        account=account, subscription=_subscription("sub_1", "trialing", catalog.pro)
    )

    account.refresh_from_db()
    assert (account.tier, account.payment_status) == (catalog.pro, "trialing")


@pytest.mark.django_db
def test_an_incomplete_first_payment_changes_only_the_status(catalog):
    account = AccountFactory()

    account_subscription_apply(
        account=account, subscription=_subscription("sub_1", "incomplete", catalog.pro)
    )

    account.refresh_from_db()
    assert (account.tier, account.subscribed_tier, account.payment_status) == (
        catalog.free,
        None,
        "incomplete",
    )


@pytest.mark.django_db
def test_a_product_meterdesk_does_not_sell_leaves_the_tier_alone(catalog, caplog):
    account = AccountFactory()
    foreign = _subscription("sub_1", "active", catalog.pro)
    foreign["items"]["data"][0]["price"] = {"id": "price_other", "product": "prod_other"}

    account_subscription_apply(account=account, subscription=foreign)

    account.refresh_from_db()
    assert (account.tier, account.payment_status) == (catalog.free, "active")
    assert "sells no known tier" in caplog.text


@pytest.mark.django_db
def test_applying_the_same_state_twice_changes_nothing_the_second_time(catalog):
    account = AccountFactory()
    subscription = _subscription("sub_1", "active", catalog.pro)
    account_subscription_apply(account=account, subscription=subscription)
    account.refresh_from_db()
    version = account.cache_version

    assert account_subscription_apply(account=account, subscription=subscription) == {}
    account.refresh_from_db()
    assert account.cache_version == version


@pytest.mark.django_db
def test_an_ended_subscription_starts_the_free_period_when_stripe_ended_it(catalog):
    """Processed late (a retried webhook, the daily reconcile): the paid period still stops,
    and the free one starts, at the subscription's ``ended_at``, not when we looked."""
    account = AccountFactory()
    account_subscription_apply(
        account=account, subscription=_subscription("sub_1", "active", catalog.pro)
    )
    now = timezone.now().replace(microsecond=0)
    ended_at = now - timedelta(hours=3)
    ended = _subscription("sub_1", "canceled", catalog.pro, ended_at=int(ended_at.timestamp()))

    account_subscription_apply(account=account, subscription=ended, now=now)

    account.refresh_from_db()
    assert (account.tier, account.period_start, account.period_end) == (
        catalog.free,
        ended_at,
        None,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("second", "counted_from"), [(0, 1), (17, 0)])
def test_an_upgrade_dated_on_a_whole_minute_counts_from_the_next_minute(
    catalog, second, counted_from
):
    """Stripe dates the start in whole seconds: free calls made in that second, before the
    upgrade, must not share the first paid minute."""
    account = AccountFactory()
    start = timezone.now().replace(second=second, microsecond=0) - timedelta(minutes=5)
    subscription = _subscription("sub_1", "active", catalog.pro)
    subscription["items"]["data"][0]["current_period_start"] = int(start.timestamp())

    account_subscription_apply(account=account, subscription=subscription)

    account.refresh_from_db()
    assert account.period_start == start + timedelta(seconds=counted_from)
    first_minute = start.replace(second=0) + timedelta(minutes=1)
    assert period_minutes(*account.current_period())[0] == first_minute
