"""A web worker's memory stays flat however often the key cache re-reads a key (issue 14's soak).

The key cache builds a new principal for a key every API_KEY_CACHE_SECONDS, and
``metering.hotpath.policy_for`` keeps each principal's Policy. It kept one entry per principal,
so every principal the key cache had dropped stayed alive (about 1 KB each) until 20,000 of
them: bench/soak.py saw each worker grow 11-18 % in five minutes. One entry per key now.
"""

import gc

import pytest
from django.utils import timezone

from metering import hotpath
from metering.hotpath import policy_for
from portal.principal import ApiPrincipal
from portal.selectors import api_principal_build
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db

REREADS = 50


def _principals_alive(key_id: int) -> int:
    gc.collect()
    return sum(
        1 for item in gc.get_objects() if isinstance(item, ApiPrincipal) and item.key_id == key_id
    )


def test_a_key_reread_many_times_keeps_one_policy_and_frees_the_old_principals():
    key = ApiKeyFactory()
    hotpath._policies.clear()
    # An earlier test's principal for a key with the same id (ids are reused once its
    # transaction is rolled back) may still be held by a cache it filled: not this test's.
    before = _principals_alive(key.pk)

    for _ in range(REREADS):
        policy_for(api_principal_build(key, now=timezone.now()))  # the key cache's next read

    assert len(hotpath._policies) == 1
    assert _principals_alive(key.pk) == before + 1  # the last one, in use


def test_a_principal_read_afresh_gets_its_own_policy():
    key = ApiKeyFactory()
    first = api_principal_build(key, now=timezone.now())
    key.account.tier.rate_limit_per_minute += 60
    key.account.tier.save()
    key.refresh_from_db()
    second = api_principal_build(key, now=timezone.now())

    assert policy_for(first).rate_per_minute == first.rate_limit
    assert policy_for(second).rate_per_minute == first.rate_limit + 60
    assert policy_for(second) is policy_for(second)
