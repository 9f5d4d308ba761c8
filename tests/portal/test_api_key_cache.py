"""The in-process key cache and its invalidation (portal.keys.cache)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.keys.cache import KeyCache, KeyRejected, key_cache
from portal.services import api_key_revoke
from portal.signals import account_changed_send
from tests.factories import ApiKeyFactory, QuotaCreditFactory


@pytest.fixture
def other_process(clock):
    """Stands for another web process: its own cache, with a clock the test moves."""
    return KeyCache(ttl=5, clock=clock)


@pytest.mark.django_db
def test_revoke_reaches_this_process_at_once(client, api_key, bearer):
    assert client.get("/v1/me", **bearer).status_code == 200

    api_key_revoke(key=api_key)

    response = client.get("/v1/me", **bearer)
    assert response.status_code == 401
    assert response.json()["reason"] == "revoked"


@pytest.mark.django_db
def test_revoke_reaches_a_fresh_process_at_once(api_key):
    api_key_revoke(key=api_key)

    with pytest.raises(KeyRejected) as refused:
        KeyCache(ttl=5).resolve(api_key.plaintext)
    assert refused.value.reason == "revoked"


@pytest.mark.django_db
def test_revoke_reaches_a_warm_process_within_the_ttl(api_key, other_process, clock):
    other_process.resolve(api_key.plaintext)

    api_key_revoke(key=api_key)

    # Until its entry is 5 s old, the other process still trusts what it read...
    clock.advance(4.9)
    assert other_process.resolve(api_key.plaintext).key_id == api_key.pk
    # ...and from then on it reads the key again and refuses it.
    clock.advance(0.2)
    with pytest.raises(KeyRejected) as refused:
        other_process.resolve(api_key.plaintext)
    assert refused.value.reason == "revoked"


@pytest.mark.django_db
def test_account_changed_bumps_the_version_and_drops_cached_keys(api_key, account):
    before = key_cache.resolve(api_key.plaintext)

    account_changed_send(account.pk)

    account.refresh_from_db()
    assert account.cache_version == before.version + 1
    assert len(key_cache) == 0
    assert key_cache.resolve(api_key.plaintext).version == account.cache_version


@pytest.mark.django_db
def test_tier_change_is_seen_after_invalidation(api_key, account, paid_tier):
    assert not key_cache.resolve(api_key.plaintext).allows("compute")

    account.tier = paid_tier
    account.save(update_fields=["tier"])
    account_changed_send(account.pk)

    principal = key_cache.resolve(api_key.plaintext)
    assert principal.allows("compute")
    assert principal.tier_name == "Pro"


@pytest.mark.django_db
def test_a_load_racing_an_invalidation_is_not_kept(api_key, account, monkeypatch):
    """A request that read the key just before a revoke must not cache what it read."""
    import portal.keys.cache as keycache_module

    real_lookup = keycache_module.api_key_for_prefix

    def lookup_then_invalidate(prefix):
        key = real_lookup(prefix)
        account_changed_send(account.pk)  # the revoke commits while this request holds the old row
        return key

    monkeypatch.setattr(keycache_module, "api_key_for_prefix", lookup_then_invalidate)
    key_cache.resolve(api_key.plaintext)

    assert len(key_cache) == 0


@pytest.mark.django_db
def test_refused_keys_are_cached_too(account, django_assert_num_queries):
    key = ApiKeyFactory(account=account, revoked_at=timezone.now())
    with pytest.raises(KeyRejected):
        key_cache.resolve(key.plaintext)

    with django_assert_num_queries(0), pytest.raises(KeyRejected) as refused:
        key_cache.resolve(key.plaintext)
    assert refused.value.reason == "revoked"


@pytest.mark.django_db
def test_unknown_prefixes_are_not_cached(db):
    with pytest.raises(KeyRejected):
        key_cache.resolve("mdk_test_abcdefgh_" + "a" * 32)

    assert len(key_cache) == 0


@pytest.mark.django_db
def test_a_cached_key_stops_at_its_expiry_whatever_the_ttl(account, clock):
    expires = timezone.now() + timedelta(minutes=1)
    key = ApiKeyFactory(account=account, expires_at=expires)
    cache = KeyCache(ttl=3600, clock=clock)
    cache.resolve(key.plaintext)

    with pytest.raises(KeyRejected) as refused:
        cache.resolve(key.plaintext, now=expires)
    assert refused.value.reason == "expired"


@pytest.mark.django_db
def test_ttl_zero_reads_the_database_every_time(api_key, django_assert_num_queries):
    cache = KeyCache(ttl=0)
    cache.resolve(api_key.plaintext)

    with django_assert_num_queries(2):
        cache.resolve(api_key.plaintext)


@pytest.mark.django_db
def test_quota_includes_this_periods_credits(api_key, account):
    QuotaCreditFactory(account=account, units=250)

    principal = key_cache.resolve(api_key.plaintext)

    assert principal.quota == account.tier.included_units + 250


@pytest.mark.django_db
def test_a_new_period_rereads_the_quota(api_key, account, clock):
    cache = KeyCache(ttl=3600, clock=clock)
    first = cache.resolve(api_key.plaintext)
    QuotaCreditFactory(account=account, period_start=first.period_end, units=10)

    later = cache.resolve(api_key.plaintext, now=first.period_end)

    assert later.period_start == first.period_end
    assert later.quota == first.quota + 10


@pytest.mark.django_db
def test_a_full_cache_drops_old_entries(account, clock):
    cache = KeyCache(ttl=5, clock=clock, max_entries=4)
    keys = [ApiKeyFactory(account=account) for _ in range(6)]

    for key in keys:
        cache.resolve(key.plaintext)

    assert len(cache) <= 4
    assert cache.resolve(keys[-1].plaintext).key_id == keys[-1].pk


@pytest.mark.django_db
def test_principal_carries_the_tiers_limits(account, paid_tier):
    account.tier = paid_tier
    account.save(update_fields=["tier"])
    key = ApiKeyFactory(account=account)

    principal = KeyCache(ttl=5).resolve(key.plaintext)

    assert principal.rate_limit == paid_tier.rate_limit_per_minute
    assert principal.burst == paid_tier.effective_burst
    assert principal.overage_policy == "bill"
    assert principal.overage_cap == paid_tier.overage_cap_units()
    assert principal.scopes == frozenset({"basic", "compute"})
    assert principal.account_active
