"""Nothing a caller sends to the API writes an ERROR line: a refused method on a free endpoint
gives back its request count and no units (Redis refused the ``-0`` units it used to send, one
ERROR per call), and the lines a caller can reach at will are throttled.

Run on both limiters: the in-process one, and Redis (the ``redis`` marker) where the bug was.
"""

import json
import logging
from typing import Any

import pytest

from metering import hotpath
from metering.limiter import get_limiter, set_limiter
from metering.limiter.base import Decision
from tests.services import redis_url

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def limiter_backend(request, settings):
    """The API metered by the in-process limiter or by Redis (REDIS_URL)."""
    settings.METERING_REDIS_URL = redis_url() if request.param == "redis" else ""
    set_limiter(None)
    yield request.param
    set_limiter(None)


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def live_units(account_id: int) -> int:
    return sum(c.units for m in get_limiter().live_usage(account_id).values() for c in m)


def live_requests(account_id: int) -> int:
    return sum(c.requests for m in get_limiter().live_usage(account_id).values() for c in m)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_refused_method_on_a_free_endpoint_logs_no_error_and_bills_nothing(
    client, api_key, bearer, limiter_backend, method, caplog
):
    with caplog.at_level(logging.INFO):
        refused = [getattr(client, method)("/v1/me", **bearer) for _ in range(20)]
        after = client.get("/v1/me", **bearer)

    assert {r.status_code for r in refused} == {405}
    assert refused[0].json()["type"].endswith("/problems/method-not-allowed/")
    assert after.status_code == 200
    assert errors(caplog) == []
    assert live_units(api_key.account_id) == 0
    # Only the GET that was answered counts as a request in the developer's usage.
    assert live_requests(api_key.account_id) == 1


def test_bad_requests_of_every_kind_log_no_error(
    client, api_key, bearer, paid_key, paid_bearer, limiter_backend, caplog
):
    """A sweep of what a key holder (or anyone) can send wrong: each gets its 4xx, none an
    ERROR line."""
    json_post = {"content_type": "application/json", **paid_bearer}
    bad_requests = [
        lambda: client.post("/v1/me", **bearer),
        lambda: client.post("/v1/usage", **bearer),
        lambda: client.post("/v1/compute", data="{not json", **json_post),
        lambda: client.post("/v1/compute", data=json.dumps({"x": "y"}), **json_post),
        lambda: client.post("/v1/compute", data="a=1", content_type="text/plain", **paid_bearer),
        lambda: client.post("/v1/compute", data="[" * 2_000_000, **json_post),
        lambda: client.get("/v1/me", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz"),
        lambda: client.get("/v1/me", HTTP_AUTHORIZATION=""),
        lambda: client.get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {api_key.prefix}_{'x' * 32}"),
        lambda: client.get("/v1/nothing-here", **bearer),
        lambda: client.options("/v1/me", **bearer),
    ]

    with caplog.at_level(logging.INFO):
        statuses = [send().status_code for send in bad_requests for _ in range(3)]

    assert all(400 <= status < 500 for status in statuses), statuses
    assert errors(caplog) == []
    assert live_units(api_key.account_id) == live_units(paid_key.account_id) == 0


def test_a_give_back_after_the_rollup_is_said_once_per_interval_as_a_warning(
    client, paid_bearer, monkeypatch, caplog
):
    """A caller who sends a body slowly enough can outlast the rollup's grace on every call;
    the line that says so is throttled, and is not an error of the system."""
    limiter = get_limiter()

    def too_late(decision: Decision, **kw: Any) -> bool:
        return False  # what the limiter answers once the call's minute was rolled up

    monkeypatch.setattr(limiter, "give_back", too_late)
    monkeypatch.setattr(hotpath, "_log_late_give_back", hotpath._Throttled(interval=10.0))

    with caplog.at_level(logging.INFO, logger="metering.hotpath"):
        statuses = [
            client.post(
                "/v1/compute", data="{}", content_type="application/json", **paid_bearer
            ).status_code
            for _ in range(5)
        ]

    late = [r for r in caplog.records if "rolled up" in r.getMessage()]
    assert statuses == [400] * 5
    assert [r.levelno for r in late] == [logging.WARNING]
    assert errors(caplog) == []
