"""``appendfsync always`` keeps its promise through a SIGKILL: every call the API admitted before
Redis was killed is billed after it restarts from the same AOF, exactly.

Redis writes and fsyncs the AOF before it replies with ``always``
(https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/, "appendfsync
always"), so an admitted call's counters are on disk before its 200 leaves. The test runs a
redis-server of its own (tests/metering/redis_process.py), kills it with SIGKILL (no shutdown
save, no last fsync), starts it again on the same directory, and rolls up.
"""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from metering.limiter import set_limiter
from metering.models import UsageRollup
from metering.selectors import period_units
from metering.services import ROLLUP_GRACE_SECONDS, usage_rollup
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory
from tests.metering.redis_process import limiter_on, redis_process

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

CALLS = 60


def test_every_admitted_call_is_billed_after_a_sigkill_with_appendfsync_always(
    tmp_path, settings, call
):
    key = ApiKeyFactory(account=AccountFactory(tier=TierFactory(rate_limit_per_minute=10_000)))
    with redis_process(tmp_path, "--appendonly", "yes", "--appendfsync", "always") as server:
        limiter_on(settings, server)
        statuses = [call(key, "/v1/test/lookup").status_code for _ in range(CALLS)]
        assert statuses == [200] * CALLS

        server.kill()
        server.start()
        set_limiter(None)  # this process's connections died with the old server

        # Every minute, the current one included: the clock is past the rollup's grace.
        usage_rollup(now=timezone.now() + timedelta(seconds=ROLLUP_GRACE_SECONDS + 120))

        billed = UsageRollup.objects.filter(account_id=key.account_id).aggregate(Sum("units"))
        assert billed["units__sum"] == CALLS
        assert period_units(key.account_id, key.account.period_start) == CALLS
