import pytest

from tests.services import redis_url


@pytest.mark.django_db
def test_healthz_reports_database_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}} or (
        response.json()["checks"]["redis"] == "ok"
    )


@pytest.mark.django_db
def test_healthz_reports_redis_when_configured(client, settings):
    settings.REDIS_URL = redis_url()

    body = client.get("/healthz").json()

    assert body["checks"]["redis"] == "ok"


@pytest.mark.django_db
def test_healthz_is_503_when_a_redis_does_not_answer(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert response.json()["checks"]["redis"].startswith("error: ")
