"""The admin's usage column says when its figures are from (issue 16).

It sums rolled-up minutes only, so it trails the live counters by a minute or more (and by
however long the rollup has been failing), and said nothing about it.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from metering.models import RollupBatch
from metering.services import usage_rollup
from tests.factories import ApiKeyFactory
from tests.portal.admin_actions import changelist_url

pytestmark = pytest.mark.django_db


def usage_header(client) -> str:
    page = client.get(changelist_url()).content.decode()
    start = page.index("Usage this period")
    return page[start : page.index("<", start)]


def test_before_any_rollup_the_column_says_nothing_is_rolled_up(admin_client, account):
    assert usage_header(admin_client) == "Usage this period (nothing rolled up yet)"


def test_the_column_is_as_of_the_last_rollup(admin_client, client, account):
    key = ApiKeyFactory(account=account)
    assert client.get("/v1/lookup", {"q": "1"}, HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    usage_rollup(now=timezone.now() + timedelta(minutes=5))
    applied_at = RollupBatch.objects.get().applied_at

    header = usage_header(admin_client)

    assert header == f"Usage this period, as of {applied_at:%Y-%m-%d %H:%M} UTC"


def test_the_time_is_the_newest_batch(admin_client, account):
    older = timezone.now() - timedelta(hours=3)
    RollupBatch.objects.create(bucket="acct:1:60", applied_at=older - timedelta(hours=1))
    RollupBatch.objects.create(bucket="acct:1:120", applied_at=older)

    assert usage_header(admin_client).endswith(f"as of {older:%Y-%m-%d %H:%M} UTC")
