"""Roll up and report one million usage units of 1,000 accounts to Stripe (the emulator, in a
thread of this process), and count the Stripe calls it took.

The pipeline is the shipped one: the in-process limiter counts each account's calls over one
hour (16 to 17 units a minute), ``usage_rollup`` turns the counters into ``UsageRollup`` rows,
and ``usage_report_run`` writes one ``MeterReport`` per account and window and sends it. The
run must take exactly one meter event call per account and window, and Stripe's total must equal
the million units. As a baseline measured in the same run, the same number of bare meter event
calls go through the same SDK client with no ledger at all; the ratio is the ledger's cost.

Runs on a scratch SQLite file (or DATABASE_URL: give it a database whose data you do not need).

    .venv/bin/python bench/report_usage.py [--accounts 1000] [--units 1000000]
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METER_EVENTS = "/v1/billing/meter_events"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--units", type=int, default=1_000_000)
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="meterdesk-bench-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch}/bench.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench._report_usage_settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)

    from devtools.stripe_emulator import Emulator

    emulator = Emulator(port=0, webhook_mode="manual").start()
    try:
        run(emulator, args.accounts, args.units)
    finally:
        emulator.stop()


def run(emulator, account_count: int, total_units: int) -> None:
    import stripe
    from django.conf import settings

    settings.STRIPE_API_BASE = emulator.url
    stripe.api_base = emulator.url
    from billing.services.reports import usage_report_run
    from billing.stripe_api import stripe_client
    from metering.limiter.base import Policy
    from metering.limiter.local import LocalLimiter
    from metering.models import UsageRollup
    from metering.services import usage_rollup

    client = stripe_client()
    client.v1.billing.meters.create(
        params={
            "display_name": "API units",
            "event_name": settings.STRIPE_METER_EVENT_NAME,
            "default_aggregation": {"formula": "sum"},
        }
    )
    # The last full hour before the reporter's grace: the window every account reports.
    now = datetime.now(UTC)
    hour = (now - timedelta(seconds=settings.USAGE_REPORT_GRACE_SECONDS)).replace(
        minute=0, second=0, microsecond=0
    )
    window_start = hour - timedelta(hours=1)

    started = time.perf_counter()
    accounts = make_accounts(client, account_count, window_start)
    setup_seconds = time.perf_counter() - started

    # --- Counting: the hot path's limiter, one hit per account and minute -------------------
    limiter = LocalLimiter()
    policy = Policy(
        rate_per_minute=10**9,
        burst=10**9,
        quota=10**12,
        overage_policy="bill",
        overage_cap=None,
        period_start=window_start,
        period_end=window_start + timedelta(days=30),
    )
    per_account = total_units // account_count
    started = time.perf_counter()
    for number, account_id in enumerate(accounts):
        units = per_account + (1 if number < total_units % account_count else 0)
        for minute in range(60):
            cost = units // 60 + (1 if minute < units % 60 else 0)
            if cost:
                moment = (window_start + timedelta(minutes=minute, seconds=30)).timestamp()
                decision = limiter.hit(
                    account_id=account_id,
                    key_id=0,
                    endpoint="lookup",
                    cost=cost,
                    policy=policy,
                    seed=0,  # the period's quota counter starts empty
                    now=moment,
                )
                assert decision.counted, decision.outcome
    count_seconds = time.perf_counter() - started

    # --- Rollup: counters into rows ---------------------------------------------------------
    started = time.perf_counter()
    rolled = usage_rollup(now=now, limiter=limiter)
    rollup_seconds = time.perf_counter() - started

    # Fresh tables have no planner statistics; production's autovacuum (or SQLite's
    # optimize) gathers them, and without them the claim query may scan every account's rows.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    # --- Report: one meter event per account and window -----------------------------------
    before = emulator.request_count(METER_EVENTS)
    started = time.perf_counter()
    result = usage_report_run(now=now)
    report_seconds = time.perf_counter() - started
    report_calls = emulator.request_count(METER_EVENTS) - before

    # --- Baseline: the same number of bare SDK calls, no ledger ----------------------------
    started = time.perf_counter()
    for number in range(report_calls):
        client.v1.billing.meter_events.create(
            params={
                "event_name": "bench_baseline",
                "identifier": f"baseline-{number}",
                "payload": {"stripe_customer_id": "cus_baseline", "value": "1"},
            }
        )
    baseline_seconds = time.perf_counter() - started

    rollup_units = sum(UsageRollup.objects.values_list("units", flat=True))
    stripe_units = sum(
        emulator.meter_event_total(customer, settings.STRIPE_METER_EVENT_NAME)
        for customer in accounts.values()
    )
    sent = sum(1 for report in result.reports if report.status == "sent")
    print(f"accounts: {account_count}, units counted: {total_units:,}")
    print(f"setup (customers, accounts): {setup_seconds:.1f} s")
    print(f"count   {count_seconds:6.2f} s  limiter hits for {total_units:,} units")
    print(
        f"rollup  {rollup_seconds:6.2f} s  {rolled.rows:,} rows, {rolled.units:,} units "
        f"({rolled.buckets:,} buckets)"
    )
    print(
        f"report  {report_seconds:6.2f} s  {sent:,} reports sent, {report_calls:,} Stripe calls "
        f"({report_calls / max(1, account_count):.2f} per account and window)"
    )
    print(f"baseline {baseline_seconds:5.2f} s  {report_calls:,} bare meter event calls, no ledger")
    print(f"report / baseline: {report_seconds / baseline_seconds:.2f}x")
    print(
        f"total (count + rollup + report): {count_seconds + rollup_seconds + report_seconds:.1f} s"
    )
    print(f"units: counted {total_units:,}, rolled up {rollup_units:,}, Stripe {stripe_units:,}")
    exact = rollup_units == stripe_units == total_units and report_calls == account_count
    if not exact:
        sys.exit("FAILED: Stripe's total or the number of calls is off")
    print("OK: Stripe's total equals the rolled-up total; one call per account and window")


def make_accounts(client, count: int, period_start: datetime) -> dict[int, str]:
    """``count`` subscribed accounts, each a Stripe customer; returns {account id: customer id}."""
    from django.contrib.auth import get_user_model
    from djstripe.models import Customer

    from billing.models import Tier
    from portal.models import Account

    tier, _ = Tier.objects.update_or_create(
        slug="bench-pro",
        defaults={
            "name": "Bench Pro",
            "base_price_cents": 4900,
            "included_units": 100_000,
            "overage_policy": Tier.OveragePolicy.BILL,
            "overage_unit_price_cents": "0.05",
        },
    )
    customer_ids = [
        client.v1.customers.create(params={"email": f"bench{n}@example.com"}).id
        for n in range(count)
    ]
    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [user_model(username=f"bench{n}", email=f"bench{n}@example.com") for n in range(count)]
    )
    customers = Customer.objects.bulk_create(
        [Customer(id=customer_id, livemode=False) for customer_id in customer_ids]
    )
    accounts = Account.objects.bulk_create(
        [
            Account(
                owner=user,
                tier=tier,
                stripe_customer=customer,
                stripe_subscription_id=f"sub_bench{n}",
                payment_status=Account.PaymentStatus.ACTIVE,
                period_start=period_start,
                period_end=period_start + timedelta(days=30),
            )
            for n, (user, customer) in enumerate(zip(users, customers, strict=True))
        ]
    )
    return {
        account.pk: customer_id for account, customer_id in zip(accounts, customer_ids, strict=True)
    }


if __name__ == "__main__":
    main()
