"""A change made by another web process (a key revoked, a tier moved) holds at once on this
one, not after its key cache expires: the process that made it publishes the account's new
version to Redis, and the limiter's script, in the same round trip as every request, refuses
a principal read at an older version. Redis only: the embedded mode is one process."""

import pytest
from django.db.models import F
from django.utils import timezone

from metering.limiter import get_limiter
from metering.limiter.redis import RedisLimiter
from metering.receivers import account_version_publish
from portal.models import Account, ApiKey
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory
from tests.services import redis_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _redis(settings):
    redis_url()
    assert settings.API_KEY_CACHE_SECONDS >= 5  # the cache alone would keep the old answer


def lookup(client, key):
    return client.get("/v1/lookup", {"q": 7}, HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")


def changed_elsewhere(account_id: int) -> None:
    """What account_changed does in another process: rows, version, publish; this process's
    key cache is left as it was."""
    Account.objects.filter(pk=account_id).update(cache_version=F("cache_version") + 1)
    account_version_publish(account_id)


def test_a_key_revoked_by_another_process_is_refused_at_once(client):
    key = ApiKeyFactory(account=AccountFactory(tier=TierFactory(rate_limit_per_minute=600)))
    assert lookup(client, key).status_code == 200  # now cached in this process

    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    changed_elsewhere(key.account_id)
    refused = lookup(client, key)

    assert refused.status_code == 401
    assert refused["Content-Type"].startswith("application/problem+json")
    assert "WWW-Authenticate" in refused


def test_a_tier_moved_by_another_process_applies_to_the_next_call(client):
    account = AccountFactory(tier=TierFactory(included_units=1, rate_limit_per_minute=600))
    key = ApiKeyFactory(account=account)
    assert lookup(client, key).status_code == 200
    assert lookup(client, key).status_code == 429  # the one included unit is spent

    roomier = TierFactory(included_units=1_000, rate_limit_per_minute=600)
    Account.objects.filter(pk=account.pk).update(tier=roomier)
    changed_elsewhere(account.pk)
    response = lookup(client, key)

    assert response.status_code == 200
    assert '"period";q=1000' in response["RateLimit-Policy"]


def test_a_suspension_by_another_process_is_a_403_with_its_reason(client):
    key = ApiKeyFactory(account=AccountFactory(tier=TierFactory(rate_limit_per_minute=600)))
    assert lookup(client, key).status_code == 200

    Account.objects.filter(pk=key.account_id).update(
        status=Account.Status.SUSPENDED, suspended_reason="Unpaid invoices"
    )
    changed_elsewhere(key.account_id)
    refused = lookup(client, key)

    assert refused.status_code == 403
    assert refused.json()["reason"] == "Unpaid invoices"


def test_a_late_publisher_never_lowers_the_published_version():
    account = AccountFactory()
    changed_elsewhere(account.pk)
    changed_elsewhere(account.pk)
    limiter = get_limiter()
    assert isinstance(limiter, RedisLimiter)

    limiter.publish_version(account.pk, 1, ttl=60)  # a slow process, publishing an old change

    published = limiter.client.get(limiter._key(account.pk, "ver"))
    assert published is not None
    assert int(published) == 3
