"""Last-used times: recorded off the hot path, written by api_key_flush_last_used."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from portal.keys.last_used import last_used_buffer
from portal.services import api_key_flush_last_used
from portal.tasks import flush_api_key_last_used
from tests.factories import ApiKeyFactory


@pytest.mark.django_db
def test_a_call_records_the_key_and_a_flush_writes_it_in_one_update(
    client, api_key, bearer, django_assert_num_queries
):
    before = timezone.now()
    client.get("/v1/me", **bearer)
    api_key.refresh_from_db()
    assert api_key.last_used is None  # nothing written on the request itself

    with django_assert_num_queries(1):
        assert api_key_flush_last_used() == 1

    api_key.refresh_from_db()
    assert api_key.last_used is not None
    assert before - timedelta(seconds=1) <= api_key.last_used <= timezone.now()


@pytest.mark.django_db
def test_many_keys_are_written_in_chunks(account, django_assert_num_queries):
    keys = ApiKeyFactory.create_batch(3, account=account)
    for key in keys:
        last_used_buffer.record(key.pk)

    with django_assert_num_queries(1):
        assert api_key_flush_last_used() == 3
    assert all(key.last_used is not None for key in type(keys[0]).objects.all())


@pytest.mark.django_db
def test_a_late_flush_never_moves_last_used_back(account):
    recent = timezone.now()
    key = ApiKeyFactory(account=account, last_used=recent)
    last_used_buffer.record(key.pk, when=(recent - timedelta(hours=1)).timestamp())

    api_key_flush_last_used()

    key.refresh_from_db()
    assert key.last_used == recent


@pytest.mark.django_db
def test_nothing_buffered_runs_no_query(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert api_key_flush_last_used() == 0


@pytest.mark.django_db
def test_a_failed_flush_keeps_the_times_for_the_next_one(api_key, monkeypatch):
    when = time.time()
    last_used_buffer.record(api_key.pk, when=when)

    def broken_update(self, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("django.db.models.query.QuerySet.update", broken_update)
    with pytest.raises(RuntimeError):
        api_key_flush_last_used()
    monkeypatch.undo()

    assert api_key_flush_last_used() == 1
    api_key.refresh_from_db()
    assert api_key.last_used == datetime.fromtimestamp(when, tz=UTC)


@pytest.mark.django_db
def test_the_beat_task_flushes(api_key):
    last_used_buffer.record(api_key.pk)

    assert flush_api_key_last_used.delay().get() == 1

    api_key.refresh_from_db()
    assert api_key.last_used is not None


@pytest.mark.django_db(transaction=True)
def test_each_process_flushes_on_a_timer(api_key, settings):
    settings.API_KEY_LAST_USED_FLUSH_SECONDS = 0.05
    last_used_buffer.stop_flusher()
    try:
        last_used_buffer.record(api_key.pk)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            api_key.refresh_from_db()
            if api_key.last_used is not None:
                break
            time.sleep(0.02)
    finally:
        last_used_buffer.stop_flusher()

    assert api_key.last_used is not None
