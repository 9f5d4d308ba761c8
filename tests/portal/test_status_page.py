"""The footer's Status opens a page in words; /healthz stays JSON for machines (issue 16)."""

import pytest

from metering.redis_safety import Finding, RedisSafety

pytestmark = pytest.mark.django_db


def test_the_footer_links_to_the_status_page_not_the_json(client):
    page = client.get("/pricing/").content.decode()

    assert '<a href="/status/">Status</a>' in page
    assert 'href="/healthz">Status' not in page


def test_the_status_page_says_each_check_in_words(client):
    response = client.get("/status/")
    page = response.content.decode()

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Everything is working." in page
    assert "Database" in page and "Working" in page
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_a_backend_that_does_not_answer_is_named(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    page = client.get("/status/").content.decode()

    assert "Something is not working." in page
    assert "Cache and job queue (Redis)" in page
    assert "Not answering" in page


def test_an_unsafe_metering_redis_is_explained_with_its_findings(client, settings, monkeypatch):
    settings.METERING_REDIS_URL = "redis://127.0.0.1:6379/15"
    unsafe = RedisSafety(
        findings=[Finding(code="no-persistence", node="127.0.0.1:6379", detail="No AOF, no RDB.")]
    )
    monkeypatch.setattr("portal.views.pages.metering_redis_safety", lambda: unsafe)

    page = client.get("/status/").content.decode()

    assert "Everything is working." in page
    assert "Usage metering (Redis)" in page
    assert "could lose usage data" in page
    assert "no-persistence" in page


def test_healthz_still_answers_json(client):
    response = client.get("/healthz")

    assert response["Content-Type"] == "application/json"
    assert response.json()["status"] == "ok"
