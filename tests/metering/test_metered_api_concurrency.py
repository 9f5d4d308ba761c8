"""Admitted = metered = billed, under concurrency: many clients at once on one account, some
calls failing, some refused; afterwards every figure equals the units of the calls that
succeeded — the limiter's quota, the usage counters, the rollup rows, the usage API."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from metering.hotpath import policy_for
from metering.limiter import get_limiter
from metering.models import UsageRollup
from metering.selectors import usage_summary
from metering.services import usage_rollup
from portal.keys.cache import key_cache
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory

# (path, units) in turn: a 1-unit call, a 400 (given back), a 2-unit success, a 5-unit call.
CALLS = [
    ("/v1/test/lookup", 1),
    ("/v1/test/validate", 2),
    ("/v1/test/validate?valid=1", 2),
    ("/v1/test/compute", 5),
]
THREADS = 8
PER_THREAD = 24
BURST = 60


@pytest.mark.django_db(transaction=True)
def test_every_figure_equals_the_units_of_successful_calls(metered_urls):
    # A burst of 60 units that refills one unit a minute: the run spends it and is refused.
    tier = TierFactory(rate_limit_per_minute=1, burst=BURST, included_units=10_000)
    account = AccountFactory(tier=tier)
    keys = [ApiKeyFactory(account=account) for _ in range(2)]
    start = threading.Barrier(THREADS)
    outcomes: list[tuple[int, int]] = []
    lock = threading.Lock()

    def client_run(index: int):
        client = Client()
        key = keys[index % 2]
        start.wait()
        try:
            for call in range(PER_THREAD):
                path, units = CALLS[(index + call) % len(CALLS)]
                response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
                with lock:
                    outcomes.append((response.status_code, units))
        finally:
            # The thread's own database connection, or the test database cannot be dropped.
            connection.close()

    threads = [threading.Thread(target=client_run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = {status for status, _ in outcomes}
    billed_units = sum(units for status, units in outcomes if status == 200)
    billed_calls = sum(1 for status, _ in outcomes if status == 200)
    assert statuses == {200, 400, 429}
    assert billed_units <= BURST
    policy = policy_for(key_cache.resolve(keys[0].plaintext))
    assert get_limiter().quota_used(account.pk, policy) == billed_units
    live = usage_summary(account=account)
    assert (live.units, live.requests) == (billed_units, billed_calls)

    usage_rollup(now=timezone.now() + timedelta(minutes=5))

    rolled = UsageRollup.objects.filter(account=account).aggregate(
        units=Sum("units"), requests=Sum("requests")
    )
    assert (rolled["units"], rolled["requests"]) == (billed_units, billed_calls)
    assert get_limiter().live_usage(account.pk) == {}
    after = usage_summary(account=account)
    assert (after.units, after.requests) == (billed_units, billed_calls)
    assert sum(k.units for k in after.keys) == billed_units
