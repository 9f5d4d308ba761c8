"""The rollup (service, management command and Celery task): counters become UsageRollup rows
exactly once, across a crash at any step, and only for minutes that are closed."""

import time
from datetime import UTC, datetime
from functools import partial
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from metering import services
from metering.limiter import get_limiter
from metering.models import RollupBatch, UsageRollup
from metering.services import ROLLUP_GRACE_SECONDS, usage_rollup
from metering.tasks import rollup_usage
from tests.factories import ApiKeyFactory
from tests.metering.spending import spend as spend_units

pytestmark = pytest.mark.django_db

# Ten minutes ago, on a minute boundary: closed and past the grace.
PAST = (time.time() // 60 - 10) * 60
spend = partial(spend_units, at=PAST)  # in that minute unless a test says when


class Crash(Exception):
    pass


@pytest.fixture
def key(api_key):
    return api_key(rate_limit_per_minute=10_000, included_units=10_000)


def rows(account_id):
    found = UsageRollup.objects.filter(account_id=account_id).values_list(
        "api_key_id", "endpoint", "minute", "units", "requests"
    )
    return sorted(found, key=lambda row: (row[0] is None, row[0] or 0, *row[1:]))


def minute(at: float) -> datetime:
    return datetime.fromtimestamp(at // 60 * 60, UTC)


def test_closed_minutes_become_rows_per_key_endpoint_and_minute(key):
    spend(key, cost=2, times=3)
    spend(key, cost=5, endpoint="compute")
    spend(key, at=PAST + 60)

    result = usage_rollup()

    assert rows(key.account_id) == [
        (key.pk, "compute", minute(PAST), 5, 1),
        (key.pk, "lookup", minute(PAST), 6, 3),
        (key.pk, "lookup", minute(PAST + 60), 1, 1),
    ]
    assert (result.buckets, result.applied, result.units, result.requests) == (2, 2, 12, 5)
    assert get_limiter().live_usage(key.account_id) == {}
    assert RollupBatch.objects.count() == 2


def test_minutes_within_the_grace_stay_in_the_counters(key):
    now = time.time()
    recent = now - ROLLUP_GRACE_SECONDS  # ended less than the grace ago
    spend(key, at=recent)

    result = usage_rollup()

    assert result.buckets == 0
    assert rows(key.account_id) == []
    assert get_limiter().live_usage(key.account_id) != {}


def test_a_crash_after_the_commit_is_finished_by_the_next_run(key, monkeypatch):
    spend(key, times=4)
    limiter = get_limiter()
    discard = limiter.discard

    def crash(buckets):
        raise Crash("worker killed after the database commit")

    monkeypatch.setattr(limiter, "discard", crash)
    with pytest.raises(Crash):
        usage_rollup()
    committed = rows(key.account_id)
    monkeypatch.setattr(limiter, "discard", discard)

    rerun = usage_rollup()

    assert committed == [(key.pk, "lookup", minute(PAST), 4, 4)]
    assert rows(key.account_id) == committed
    assert (rerun.applied, rerun.already_applied) == (0, 1)
    assert get_limiter().live_usage(key.account_id) == {}
    assert usage_rollup().buckets == 0


def test_a_crash_before_the_commit_applies_the_same_counters_next_run(key, monkeypatch):
    spend(key, times=2)
    original = services._apply

    def crash(drained, result):
        original(drained, result)
        raise Crash("database connection lost before the commit")

    monkeypatch.setattr(services, "_apply", crash)
    with pytest.raises(Crash):
        usage_rollup()
    nothing = rows(key.account_id)
    monkeypatch.setattr(services, "_apply", original)

    rerun = usage_rollup()

    assert nothing == []
    assert rows(key.account_id) == [(key.pk, "lookup", minute(PAST), 2, 2)]
    assert rerun.applied == 1


def test_a_late_give_back_never_changes_a_rolled_up_row(key):
    (decision,) = spend(key, cost=3)
    usage_rollup()

    returned = get_limiter().give_back(decision)

    assert returned is False
    assert rows(key.account_id) == [(key.pk, "lookup", minute(PAST), 3, 1)]


def test_given_back_calls_are_not_rolled_up(key):
    _kept, returned = spend(key, times=2)
    get_limiter().give_back(returned)

    usage_rollup()

    assert rows(key.account_id) == [(key.pk, "lookup", minute(PAST), 1, 1)]


def test_usage_of_a_deleted_key_stays_with_the_account(key):
    other = ApiKeyFactory(account=key.account)
    spend(other, times=2)
    spend(key)
    other.delete()

    usage_rollup()

    assert rows(key.account_id) == [
        (key.pk, "lookup", minute(PAST), 1, 1),
        (None, "lookup", minute(PAST), 2, 2),
    ]


def test_a_bucket_already_applied_is_only_discarded(key):
    spend(key, times=2)
    bucket = get_limiter().pending_buckets(before=int(time.time()))[0]
    with transaction.atomic():
        RollupBatch.objects.create(bucket=bucket.name, units=2, requests=2)

    result = usage_rollup()

    assert (result.applied, result.already_applied) == (0, 1)
    assert rows(key.account_id) == []
    assert get_limiter().live_usage(key.account_id) == {}


def test_the_command_rolls_up_and_says_what_it_did(key):
    spend(key, cost=2, times=2)
    out = StringIO()

    call_command("rollup_usage", stdout=out)

    assert "1 buckets: 1 applied, 0 already applied; 1 rows, 4 units, 2 requests" in out.getvalue()
    assert rows(key.account_id) == [(key.pk, "lookup", minute(PAST), 4, 2)]


def test_the_task_rolls_up(key):
    spend(key)

    rollup_usage.delay()

    assert rows(key.account_id) == [(key.pk, "lookup", minute(PAST), 1, 1)]
