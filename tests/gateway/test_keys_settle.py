"""POST /v1/keys/settle: the upstream says what a verified call cost; the rest of the
reservation goes back, once, whatever is sent again (issue 15)."""

import pytest
from django.core import signing

from gateway import edge
from gateway.services import upstream_service_token_issue
from metering.limiter import get_limiter
from tests.factories import EndpointFactory
from tests.gateway.edge import (
    developer_key,
    edge_upstream,
    endpoint,
    post,
    service_token,
    units_counted,
    usage_of,
)

__all__ = ["developer_key", "edge_upstream", "endpoint", "post", "service_token"]

pytestmark = pytest.mark.django_db
VERIFY, SETTLE = "/v1/keys/verify", "/v1/keys/settle"


@pytest.fixture
def reservation(post, service_token, endpoint, developer_key):
    body = post(
        VERIFY, {"key": developer_key.plaintext, "endpoint": "generate"}, token=service_token
    ).json()
    assert body["allowed"]
    return body["reservation"]


def test_the_units_used_are_kept_and_the_rest_given_back(
    post, service_token, reservation, developer_key
):
    answer = post(SETTLE, {"reservation": reservation, "units": 4}, token=service_token)

    assert answer.status_code == 200
    assert answer.json() == {"reserved": 10, "units": 4, "given_back": 6, "error": False}
    assert units_counted(developer_key) == 4
    [count] = usage_of(developer_key)
    assert (count.endpoint, count.units, count.requests) == ("inventory/generate", 4, 1)


def test_settling_twice_answers_the_same_and_gives_back_nothing_more(
    post, service_token, reservation, developer_key
):
    first = post(SETTLE, {"reservation": reservation, "units": 4}, token=service_token).json()
    again = post(SETTLE, {"reservation": reservation, "units": 4}, token=service_token).json()
    other = post(SETTLE, {"reservation": reservation, "give_back": True}, token=service_token)

    assert again == first
    assert other.json() == first
    assert units_counted(developer_key) == 4


def test_a_call_that_used_every_unit_is_closed_too(post, service_token, reservation, developer_key):
    kept = post(SETTLE, {"reservation": reservation, "units": 10}, token=service_token).json()
    replay = post(SETTLE, {"reservation": reservation, "units": 0}, token=service_token).json()

    assert kept == replay == {"reserved": 10, "units": 10, "given_back": 0, "error": False}
    assert units_counted(developer_key) == 10


def test_give_back_returns_everything_and_counts_an_error(
    post, service_token, reservation, developer_key
):
    answer = post(SETTLE, {"reservation": reservation, "give_back": True}, token=service_token)

    assert answer.json() == {"reserved": 10, "units": 0, "given_back": 10, "error": True}
    assert units_counted(developer_key) == 0
    [count] = usage_of(developer_key)
    assert (count.units, count.requests, count.errors) == (0, 0, 1)


@pytest.mark.parametrize(("status", "billed"), [(200, 3), (201, 3), (404, 0), (502, 0)])
def test_a_status_the_endpoint_does_not_bill_gives_everything_back(
    post, service_token, reservation, developer_key, status, billed
):
    answer = post(
        SETTLE, {"reservation": reservation, "units": 3, "status": status}, token=service_token
    )

    assert answer.json()["units"] == billed
    assert units_counted(developer_key) == billed


def test_more_units_than_reserved_is_a_400_and_settles_nothing(
    post, service_token, reservation, developer_key
):
    refused = post(SETTLE, {"reservation": reservation, "units": 11}, token=service_token)
    settled = post(SETTLE, {"reservation": reservation, "units": 2}, token=service_token)

    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "units"
    assert settled.json()["units"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{oops", None),
        ("42", None),
        ({"units": 1}, "reservation"),
        ({"reservation": "RES"}, "units"),
        ({"reservation": "RES", "units": 1, "give_back": True}, "units"),
        ({"reservation": "RES", "units": -1}, "units"),
        ({"reservation": "RES", "units": 1, "status": 999}, "status"),
        ({"reservation": "RES", "give_back": "perhaps"}, "give_back"),
    ],
)
def test_bad_input_is_a_400_problem_and_settles_nothing(
    post, service_token, reservation, developer_key, body, field
):
    if isinstance(body, dict) and body.get("reservation") == "RES":
        body = {**body, "reservation": reservation}

    answer = post(SETTLE, body, token=service_token)

    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    if field is not None:
        assert field in [error["field"] for error in answer.json()["errors"]]
    assert units_counted(developer_key) == 10


def test_a_forged_reservation_is_refused(post, service_token, reservation, developer_key):
    payload = signing.loads(reservation, salt=edge.RESERVATION_SALT)
    forged = signing.dumps({**payload, "c": 1000}, salt="someone else's salt", compress=False)
    tampered = reservation[:-3] + ("AAA" if not reservation.endswith("AAA") else "BBB")

    answers = [
        post(SETTLE, {"reservation": value, "give_back": True}, token=service_token)
        for value in (forged, tampered, "just text")
    ]

    assert [answer.status_code for answer in answers] == [400, 400, 400]
    assert answers[0].json()["type"].endswith("/problems/invalid-reservation/")
    assert units_counted(developer_key) == 10


def test_another_upstreams_reservation_is_refused(post, reservation, developer_key):
    other = EndpointFactory(operation_id="generate").upstream
    other_token = upstream_service_token_issue(upstream=other, actor=None)

    answer = post(SETTLE, {"reservation": reservation, "give_back": True}, token=other_token)

    assert answer.status_code == 400
    assert units_counted(developer_key) == 10


def test_an_expired_reservation_is_a_410_and_stays_billed(
    post, service_token, endpoint, developer_key, monkeypatch
):
    monkeypatch.setattr(edge, "TOKEN_SECONDS", -60)  # issued already past its expiry
    reservation = post(
        VERIFY, {"key": developer_key.plaintext, "endpoint": "generate"}, token=service_token
    ).json()["reservation"]

    answer = post(SETTLE, {"reservation": reservation, "give_back": True}, token=service_token)

    assert answer.status_code == 410
    assert answer.json()["type"].endswith("/problems/reservation-expired/")
    assert units_counted(developer_key) == 10


def test_a_settle_after_the_minute_was_rolled_up_is_a_410(
    post, service_token, reservation, developer_key
):
    limiter = get_limiter()
    limiter.drain(limiter.pending_buckets(before=10**10))  # sealed, as the rollup does

    answer = post(SETTLE, {"reservation": reservation, "units": 0}, token=service_token)

    assert answer.status_code == 410
    assert units_counted(developer_key) == 10


def test_an_outsider_cannot_settle(client, reservation, developer_key):
    answer = client.post(
        SETTLE,
        {"reservation": reservation, "give_back": True},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer mdk_svc_abcdefgh_" + "y" * 32,
    )

    assert answer.status_code == 401
    assert answer["Content-Type"] == "application/problem+json"
    assert units_counted(developer_key) == 10
