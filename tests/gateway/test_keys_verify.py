"""POST /v1/keys/verify: an upstream with its own edge asks whether a developer's key may make
a call, and the same limiter reserves its units (issue 15)."""

import pytest

from gateway.services import upstream_service_token_issue
from portal.services import api_key_revoke
from tests.factories import AccountFactory, ApiKeyFactory, EndpointFactory, TierFactory
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
VERIFY = "/v1/keys/verify"


def test_an_allowed_call_reserves_the_maximum_and_says_how_to_settle(
    post, service_token, endpoint, developer_key
):
    answer = post(
        VERIFY, {"key": developer_key.plaintext, "endpoint": "generate"}, token=service_token
    )

    body = answer.json()
    assert answer.status_code == 200
    assert (body["allowed"], body["reason"], body["status"], body["problem"]) == (
        True,
        "admitted",
        None,
        None,
    )
    assert body["reserved"] == 10
    assert body["key"] == {
        "prefix": developer_key.prefix,
        "account": developer_key.account_id,
        "tier": "edge-builder",
    }
    assert body["headers"]["X-RateLimit-Remaining"] == "590"
    assert body["headers"]["RateLimit"].startswith('"minute";r=590;')
    assert [limit["name"] for limit in body["limits"]] == ["minute", "period"]
    assert body["limits"][1]["remaining"] == 990
    assert body["reservation"] and body["expires_at"].endswith("Z")
    assert units_counted(developer_key) == 10


def test_a_cost_named_by_the_upstream_is_what_is_reserved(
    post, service_token, endpoint, developer_key
):
    body = post(
        VERIFY,
        {"key": developer_key.plaintext, "endpoint": "generate", "cost": 3},
        token=service_token,
    ).json()

    assert body["reserved"] == 3
    assert units_counted(developer_key) == 3


@pytest.mark.parametrize(
    ("make_key", "reason"),
    [
        (lambda key: "mdk_test_zzzzzzzz_" + "a" * 32, "key_unknown"),
        (lambda key: "not a key", "key_malformed"),
        (
            lambda key: key.plaintext[:-1] + ("b" if key.plaintext[-1] != "b" else "c"),
            "key_unknown",
        ),
    ],
)
def test_a_key_that_is_not_this_installs_is_refused_with_a_401_to_answer(
    post, service_token, endpoint, developer_key, make_key, reason
):
    answer = post(
        VERIFY, {"key": make_key(developer_key), "endpoint": "generate"}, token=service_token
    )

    body = answer.json()
    assert answer.status_code == 200
    assert (body["allowed"], body["reason"], body["status"]) == (False, reason, 401)
    assert body["problem"]["status"] == 401
    assert body["problem"]["type"].endswith("/problems/unauthenticated/")
    assert body["headers"]["WWW-Authenticate"] == 'Bearer realm="api"'
    assert body["reservation"] is None
    assert usage_of(developer_key) == []


def test_a_revoked_key_is_refused_saying_so(post, service_token, endpoint, developer_key):
    api_key_revoke(key=developer_key, actor=None)

    body = post(
        VERIFY, {"key": developer_key.plaintext, "endpoint": "generate"}, token=service_token
    ).json()

    assert (body["allowed"], body["reason"], body["status"]) == (False, "key_revoked", 401)


def test_a_quota_refusal_is_a_429_to_answer_with_its_headers(post, service_token, endpoint):
    tier = TierFactory(rate_limit_per_minute=100_000, included_units=1000, scopes=["basic"])
    developer_key = ApiKeyFactory(account=AccountFactory(tier=tier))
    for _ in range(100):
        post(VERIFY, {"key": developer_key.plaintext, "endpoint": "generate"}, token=service_token)

    body = post(
        VERIFY, {"key": developer_key.plaintext, "endpoint": "generate"}, token=service_token
    ).json()

    assert (body["allowed"], body["reason"], body["status"]) == (False, "quota_exceeded", 429)
    assert body["problem"]["type"].endswith("/problems/quota-exceeded/")
    assert int(body["headers"]["Retry-After"]) > 0
    assert body["headers"]["X-RateLimit-Remaining"] == "0"
    assert body["reservation"] is None
    assert units_counted(developer_key) == 1000
    [count] = usage_of(developer_key)
    assert count.refused_quota == 1


def test_a_tier_without_the_endpoints_scope_is_a_403_to_answer(post, service_token, edge_upstream):
    EndpointFactory(upstream=edge_upstream, operation_id="premium", scope="compute")
    key = ApiKeyFactory(account=AccountFactory(tier=TierFactory(scopes=["basic"])))

    body = post(VERIFY, {"key": key.plaintext, "endpoint": "premium"}, token=service_token).json()

    assert (body["allowed"], body["reason"], body["status"]) == (False, "scope_not_allowed", 403)
    assert usage_of(key) == []


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer mdk_svc_abcdefgh_" + "x" * 32, "Bearer nonsense", "Basic abc"],
)
def test_a_caller_without_this_installs_service_token_gets_a_401(
    client, endpoint, developer_key, authorization
):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}

    answer = client.post(
        VERIFY,
        {"key": developer_key.plaintext, "endpoint": "generate"},
        content_type="application/json",
        **headers,
    )

    assert answer.status_code == 401
    assert answer["Content-Type"] == "application/problem+json"
    assert answer["WWW-Authenticate"] == 'Bearer realm="upstreams"'
    assert usage_of(developer_key) == []


def test_a_developers_own_key_is_not_a_service_token(post, endpoint, developer_key):
    answer = post(
        VERIFY,
        {"key": developer_key.plaintext, "endpoint": "generate"},
        token=developer_key.plaintext,
    )

    assert answer.status_code == 401
    assert usage_of(developer_key) == []


def test_another_upstreams_token_cannot_verify_this_upstreams_endpoints(
    post, endpoint, developer_key
):
    other = EndpointFactory(operation_id="elsewhere").upstream
    other_token = upstream_service_token_issue(upstream=other, actor=None)

    answer = post(
        VERIFY, {"key": developer_key.plaintext, "endpoint": "generate"}, token=other_token
    )

    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "endpoint"
    assert usage_of(developer_key) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", None),
        ("[1, 2]", None),
        ({"endpoint": "generate"}, "key"),
        ({"key": "k"}, "endpoint"),
        ({"key": "k", "endpoint": "nope"}, "endpoint"),
        ({"key": "k", "endpoint": "generate", "cost": -1}, "cost"),
        ({"key": "k", "endpoint": "generate", "cost": 11}, "cost"),
        ({"key": "k", "endpoint": "generate", "cost": "lots"}, "cost"),
        ({"key": ["k"], "endpoint": "generate"}, "key"),
    ],
)
def test_bad_input_is_a_400_problem_and_counts_nothing(
    post, service_token, endpoint, developer_key, body, field
):
    if isinstance(body, dict) and body.get("key") == "k":
        body = {**body, "key": developer_key.plaintext}

    answer = post(VERIFY, body, token=service_token)

    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 400
    if field is not None:
        assert field in [error["field"] for error in problem["errors"]]
    assert usage_of(developer_key) == []


def test_an_archived_endpoint_cannot_be_verified(post, service_token, endpoint, developer_key):
    endpoint.archive()
    endpoint.save()

    answer = post(
        VERIFY, {"key": developer_key.plaintext, "endpoint": "generate"}, token=service_token
    )

    assert answer.status_code == 400
    assert usage_of(developer_key) == []
