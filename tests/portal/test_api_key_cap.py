"""The bound on an account's keys holds at every moment, rolls included: 25 active keys, and at
most 25 rolled keys still working in their grace period. Rolling one key of a full account
works; rolling again while every grace runs is refused with a message that says what to do."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import ApiKey
from portal.services import (
    MAX_ACTIVE_KEYS_PER_ACCOUNT,
    MAX_ROLLING_KEYS_PER_ACCOUNT,
    MAX_USABLE_KEYS_PER_ACCOUNT,
    ApiKeyError,
    api_key_create,
    api_key_revoke,
    api_key_roll,
)
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def usable(account) -> int:
    return account.api_keys.usable().count()


def full_account(account) -> list[ApiKey]:
    return [
        api_key_create(account=account, name=f"key {n}")[0]
        for n in range(MAX_ACTIVE_KEYS_PER_ACCOUNT)
    ]


def test_the_bounds_are_25_active_and_25_rolling():
    assert (MAX_ACTIVE_KEYS_PER_ACCOUNT, MAX_ROLLING_KEYS_PER_ACCOUNT) == (25, 25)
    assert MAX_USABLE_KEYS_PER_ACCOUNT == 50


def test_rolling_one_key_of_a_full_account_works(account):
    keys = full_account(account)

    new_key, _secret = api_key_roll(key=keys[0], grace=DAY)

    assert new_key.is_active()
    assert usable(account) == MAX_ACTIVE_KEYS_PER_ACCOUNT + 1


def test_two_rounds_of_rolls_of_25_keys_never_exceed_the_cap(account):
    keys = full_account(account)
    seen = []

    first_round = []
    for key in keys:
        first_round.append(api_key_roll(key=key, grace=DAY)[0])
        seen.append(usable(account))
    refused = []
    for key in first_round:
        with pytest.raises(ApiKeyError) as error:
            api_key_roll(key=key, grace=DAY)
        refused.append(str(error.value))
        seen.append(usable(account))

    assert max(seen) == MAX_USABLE_KEYS_PER_ACCOUNT
    assert len(refused) == MAX_ACTIVE_KEYS_PER_ACCOUNT
    assert refused[0].startswith("25 rolled keys are still working in their grace period")
    assert "with no grace period" in refused[0]
    assert f"({timezone.localtime(timezone.now() + DAY):%Y-%m-%d}" in refused[0]
    # Nothing was issued by the refused rolls.
    assert ApiKey.objects.filter(account=account).count() == 50


def test_a_roll_with_no_grace_works_on_a_full_account_and_adds_no_working_key(account):
    for key in full_account(account):
        api_key_roll(key=key, grace=DAY)
    rolled = list(account.api_keys.usable().filter(replaced_by__isnull=True))

    for key in rolled:
        api_key_roll(key=key, grace=timedelta(0))

    assert usable(account) == MAX_USABLE_KEYS_PER_ACCOUNT
    assert account.api_keys.usable().filter(replaced_by__isnull=True).count() == 25


def test_a_revoked_or_finished_grace_frees_a_rolling_slot(account):
    for key in full_account(account):
        api_key_roll(key=key, grace=DAY)
    rolling = list(account.api_keys.usable().filter(replaced_by__isnull=False))
    active = list(account.api_keys.usable().filter(replaced_by__isnull=True))

    api_key_revoke(key=rolling[0])
    api_key_roll(key=active[0], grace=DAY)
    # The grace of another rolled key ends (as time would make it end).
    ApiKey.objects.filter(pk=rolling[1].pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    api_key_roll(key=active[1], grace=DAY)

    assert usable(account) == MAX_USABLE_KEYS_PER_ACCOUNT


def test_creating_a_key_counts_active_keys_only(account):
    keys = full_account(account)
    api_key_roll(key=keys[0], grace=DAY)

    with pytest.raises(ApiKeyError) as error:
        api_key_create(account=account, name="one too many")

    assert str(error.value) == (
        "An account may hold 25 active keys (keys still working in a roll's grace period are "
        "not counted); revoke one first."
    )
    api_key_revoke(key=keys[1])
    api_key_create(account=account, name="now it fits")
    assert usable(account) == 26


def test_the_keys_page_says_why_a_roll_is_refused(owner_client, account):
    for key in full_account(account):
        api_key_roll(key=key, grace=DAY)
    key = account.api_keys.usable().filter(replaced_by__isnull=True).first()

    refused = owner_client.post(f"/keys/{key.pk}/roll/", {"grace_seconds": "86400"})
    stopped = owner_client.post(f"/keys/{key.pk}/roll/", {"grace_seconds": "0"})

    assert refused.status_code == 400
    assert "still working in their grace period" in refused.content.decode()
    assert 'role="alert"' in refused.content.decode()
    assert stopped.status_code == 200
    assert "has stopped" in stopped.content.decode()
    assert usable(account) == MAX_USABLE_KEYS_PER_ACCOUNT


def test_an_account_rolled_past_the_bound_before_it_held_only_shrinks(account):
    """The defect left accounts with 25 active keys and 51 rolling ones (76 usable)."""
    keys = full_account(account)
    ApiKeyFactory.create_batch(
        51, account=account, expires_at=timezone.now() + DAY, replaced_by=keys[0]
    )
    assert usable(account) == 76

    with pytest.raises(ApiKeyError):
        api_key_create(account=account, name="more")
    with pytest.raises(ApiKeyError):
        api_key_roll(key=keys[1], grace=DAY)
    api_key_roll(key=keys[2], grace=timedelta(0))

    assert usable(account) == 76
