"""Issue 17's data migration: a database of single-owner accounts (before teams) migrates to
organisations with nothing lost. Every key, usage rollup, meter report, period and the
subscription stays attached to the same account with the same figures; each owner becomes
that organisation's one owner member, and the maker of each of its keys.

The suite runs without migrations (its tables are made from the models), so this test records
every migration as applied without running it (the tables match them:
tests/portal/test_migrations.py), then really unapplies portal's back to 0006 (the last
migration before teams), writes the old data with the *historical* models of that state, and
really migrates forward again. Transactional: SQLite's schema editor cannot run inside the
test's transaction. Migration 0004's audit-log triggers are among the faked ones, so the
database's flush after the test is not refused.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Sum

from billing.models import MeterReport
from metering.models import UsageRollup
from portal.models import Account, AccountPeriod, ApiKey, Membership, Role

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_TEAMS = ("portal", "0006_account_period")
START = datetime(2026, 3, 1, tzinfo=UTC)


def _latest(executor: MigrationExecutor) -> list[tuple[str, str]]:
    executor.loader.build_graph()
    return executor.loader.graph.leaf_nodes()


@pytest.fixture
def executor(settings) -> Iterator[MigrationExecutor]:
    """A migration executor on the test database, every migration recorded as applied. Left at
    the latest migrations afterwards (whatever the test did), with nothing recorded."""
    # The suite's --no-migrations hides every migration from the loader (as in test_migrations).
    settings.MIGRATION_MODULES = {}
    recorder = MigrationRecorder(connection)
    had_table = recorder.has_table()
    executor = MigrationExecutor(connection)
    executor.migrate(_latest(executor), fake=True)
    try:
        yield executor
    finally:
        executor.migrate(_latest(executor))
        recorder.flush()
        if not had_table:
            with connection.schema_editor() as editor:
                editor.delete_model(recorder.Migration)


def _before_teams(executor: MigrationExecutor) -> Apps:
    """Unapply portal's migrations from teams on; the models as they were then."""
    executor.loader.build_graph()  # the loader reads what is applied when it builds the graph
    executor.migrate([BEFORE_TEAMS])
    executor.loader.build_graph()
    graph = executor.loader.graph
    applied = [node for node in executor.loader.applied_migrations if node in graph.nodes]
    assert ("portal", "0007_organisations") not in applied
    return executor.loader.project_state(applied).apps


def _old_database(apps: Apps) -> None:
    """Three developers of before teams, each with an account: keys, usage, meter reports and
    periods; one of them subscribed through Stripe."""
    User = apps.get_model("auth", "User")
    Tier = apps.get_model("billing", "Tier")
    Customer = apps.get_model("djstripe", "Customer")
    OldAccount = apps.get_model("portal", "Account")
    OldAccountPeriod = apps.get_model("portal", "AccountPeriod")
    OldApiKey = apps.get_model("portal", "ApiKey")
    OldUsageRollup = apps.get_model("metering", "UsageRollup")
    OldMeterReport = apps.get_model("billing", "MeterReport")

    free = Tier.objects.create(slug="free", name="Free", is_default=True)
    pro = Tier.objects.create(slug="pro", name="Pro", base_price_cents=2900)
    for n in range(3):
        user = User.objects.create(username=f"dev{n}@example.com", email=f"dev{n}@example.com")
        paying = n == 1
        account = OldAccount.objects.create(
            owner=user,
            name=f"Shop {n}",
            tier=pro if paying else free,
            period_start=START,
            created=START - timedelta(days=n),
        )
        if paying:
            account.stripe_customer = Customer.objects.create(
                id="cus_before_teams", livemode=False, subscriber=user
            )
            account.stripe_subscription_id = "sub_before_teams"
            account.subscribed_tier = pro
            account.payment_status = "past_due"
            account.cancel_at_period_end = True
            account.grace_until = START + timedelta(days=3)
            account.save()
        OldAccountPeriod.objects.create(account=account, start=START, tier=account.tier)
        for k in range(2):
            key = OldApiKey.objects.create(
                account=account,
                name=f"key {k}",
                prefix=f"mdk_live_{n}{k}abcdef",
                secret_hash=f"{n}{k}".ljust(64, "0"),
            )
            for minute in range(3):
                OldUsageRollup.objects.create(
                    account=account,
                    api_key=key,
                    endpoint="compute",
                    minute=START + timedelta(minutes=minute),
                    units=100 * n + 10 * k + minute,
                    requests=k + minute + 1,
                )
        for window in range(2):
            window_start = START + timedelta(hours=window)
            OldMeterReport.objects.create(
                account=account,
                window_start=window_start,
                window_end=window_start + timedelta(hours=1),
                units=1000 * n + window + 7,
                identifier=f"mdk-{account.pk}-{window}",
                event_name="api_units",
                stripe_customer_id="cus_before_teams" if paying else "",
                status="sent",
            )


def _figures(apps: Any) -> dict[str, Any]:
    """Every row's account and every figure, read the same way before and after."""
    account_model = apps.get_model("portal", "Account")
    key_model = apps.get_model("portal", "ApiKey")
    rollup_model = apps.get_model("metering", "UsageRollup")
    report_model = apps.get_model("billing", "MeterReport")
    period_model = apps.get_model("portal", "AccountPeriod")
    return {
        "accounts": sorted(
            account_model.objects.values_list(
                "pk",
                "owner_id",
                "name",
                "tier__slug",
                "subscribed_tier__slug",
                "stripe_customer__id",
                "stripe_subscription_id",
                "payment_status",
                "cancel_at_period_end",
                "grace_until",
                "period_start",
                "created",
            )
        ),
        "keys": sorted(key_model.objects.values_list("pk", "account_id", "prefix", "secret_hash")),
        "rollups": sorted(
            rollup_model.objects.values_list("pk", "account_id", "api_key_id", "minute", "units")
        ),
        "units_per_account": sorted(
            rollup_model.objects.values("account_id")
            .annotate(units=Sum("units"), requests=Sum("requests"))
            .values_list("account_id", "units", "requests")
        ),
        "meter_reports": sorted(
            report_model.objects.values_list(
                "pk", "account_id", "window_start", "units", "identifier", "status"
            )
        ),
        "periods": sorted(period_model.objects.values_list("pk", "account_id", "start", "tier_id")),
    }


def test_accounts_of_before_teams_become_organisations_with_nothing_lost(executor):
    old_apps = _before_teams(executor)
    _old_database(old_apps)
    before = _figures(old_apps)

    executor.migrate(_latest(executor))

    from django.apps import apps as current_apps

    assert _figures(current_apps) == before
    assert len(before["accounts"]) == 3 and len(before["rollups"]) == 18
    for account in Account.objects.all():
        assert list(account.memberships.values_list("user_id", "role")) == [
            (account.owner_id, Role.OWNER)
        ]
        assert account.memberships.get().created == account.created
        keys = ApiKey.objects.filter(account=account)
        assert {key.created_by_id for key in keys} == {account.owner_id}
    assert Membership.objects.count() == 3
    paying = Account.objects.get(stripe_subscription_id="sub_before_teams")
    assert paying.stripe_customer is not None and paying.subscribed_tier is not None
    assert paying.stripe_customer.id == "cus_before_teams"
    assert (paying.tier.slug, paying.subscribed_tier.slug) == ("pro", "pro")
    assert UsageRollup.objects.filter(account=paying).aggregate(Sum("units")) == {
        "units__sum": sum(100 + 10 * k + m for k in range(2) for m in range(3))
    }
    assert sorted(MeterReport.objects.filter(account=paying).values_list("units", flat=True)) == [
        1007,
        1008,
    ]
    assert AccountPeriod.objects.filter(account=paying).get().start == START
