"""API errors are RFC 9457 problem documents, whatever went wrong (portal.api.problems)."""

import json
import logging

import pytest

PROBLEM = "application/problem+json"


def problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"].startswith("http")
    return body


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_path_under_v1_is_a_404_problem(client, method):
    body = problem(getattr(client, method)("/v1/nothing/here"), 404)

    assert body["instance"] == "/v1/nothing/here"
    assert "/api/docs/" in body["detail"]


@pytest.mark.django_db
def test_trailing_slash_is_a_404_problem_not_a_redirect(client, bearer):
    problem(client.get("/v1/me/", **bearer), 404)


@pytest.mark.django_db
def test_wrong_method_is_a_405_problem_with_allow(client, paid_bearer):
    response = client.get("/v1/compute", **paid_bearer)

    problem(response, 405)
    assert "POST" in response["Allow"]


@pytest.mark.django_db
def test_options_is_not_answered(client, bearer):
    problem(client.options("/v1/me", **bearer), 405)


@pytest.mark.django_db
def test_invalid_query_is_a_400_listing_each_field(client, bearer):
    body = problem(client.get("/v1/lookup?q=abc", **bearer), 400)

    assert body["errors"] == [
        {"field": "q", "detail": "A valid integer is required.", "code": "invalid"}
    ]
    assert body["detail"].startswith("q: ")


@pytest.mark.django_db
def test_invalid_body_lists_nested_fields(client, paid_bearer):
    response = client.post(
        "/v1/compute",
        {"values": [1, "x", 3], "percentiles": [50, 101]},
        content_type="application/json",
        **paid_bearer,
    )

    body = problem(response, 400)
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"values.1", "percentiles.1"}
    assert body["detail"] == "2 problems with the request; see errors."


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["{not json", "[1, 2,", "NaN", '{"values": [Infinity]}', "\xff"])
def test_malformed_json_is_a_400_problem(client, paid_bearer, raw):
    response = client.post(
        "/v1/compute", raw.encode("latin-1"), content_type="application/json", **paid_bearer
    )

    body = problem(response, 400)
    assert body["type"].endswith("/problems/malformed-body/")


@pytest.mark.django_db
def test_deeply_nested_json_is_a_400_not_a_500(client, paid_bearer):
    raw = "[" * 100_000 + "]" * 100_000

    response = client.post("/v1/compute", raw, content_type="application/json", **paid_bearer)

    problem(response, 400)


@pytest.mark.django_db
def test_body_over_the_limit_is_a_413_problem(client, paid_bearer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    raw = json.dumps({"values": list(range(500))})

    response = client.post("/v1/compute", raw, content_type="application/json", **paid_bearer)

    body = problem(response, 413)
    assert body["limit"] == 1000


@pytest.mark.django_db
def test_form_body_is_a_415_problem(client, paid_bearer):
    response = client.post("/v1/compute", {"values": "1"}, **paid_bearer)

    body = problem(response, 415)
    assert body["type"].endswith("/problems/unsupported-media-type/")


@pytest.mark.django_db
def test_html_only_accept_is_a_406_problem(client, bearer):
    problem(client.get("/v1/me", HTTP_ACCEPT="text/html", **bearer), 406)


@pytest.mark.django_db
def test_an_unexpected_error_is_a_logged_500_problem(client, bearer, monkeypatch, caplog):
    def broken(number):
        raise RuntimeError("the product fell over")

    monkeypatch.setattr("portal.demo_product.number_facts", broken)

    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/v1/lookup?q=5", **bearer)

    body = problem(response, 500)
    assert "fell over" not in json.dumps(body)
    assert any("the product fell over" in str(r.exc_info) for r in caplog.records)


@pytest.mark.django_db
def test_problem_type_uris_explain_themselves(client):
    body = problem(client.get("/v1/me"), 401)

    page = client.get(body["type"].replace("http://127.0.0.1:8000", ""))

    assert page.status_code == 200
    assert "A valid API key is required" in page.content.decode()


@pytest.mark.django_db
def test_unknown_problem_type_page_is_404(client):
    assert client.get("/problems/no-such-problem/").status_code == 404


def handle(exc, rf):
    from rest_framework.request import Request

    from portal.api.problems import problem_exception_handler

    return problem_exception_handler(exc, {"request": Request(rf.get("/v1/lookup"))})


@pytest.mark.django_db
def test_a_throttle_refusal_keeps_its_members_and_rounds_retry_after_up(rf):
    from rest_framework.exceptions import Throttled

    class QuotaGone(Throttled):
        problem_type = "rate-limited"

        def __init__(self):
            super().__init__(wait=2.2)
            self.problem_extra = {"limit": 60, "remaining": 0}

    response = handle(QuotaGone(), rf)

    assert response.status_code == 429
    assert response["Retry-After"] == "3"
    assert response.data["limit"] == 60
    assert response.data["remaining"] == 0
    assert response.data["type"].endswith("/problems/rate-limited/")


@pytest.mark.django_db
def test_extension_members_never_replace_the_standard_ones(rf):
    from rest_framework.exceptions import PermissionDenied

    class ClashingMembers(PermissionDenied):
        problem_extra = {"status": 200, "detail": "fine", "hint": "ask"}

    body = handle(ClashingMembers("no"), rf).data

    assert body["status"] == 403
    assert body["detail"] == "no"
    assert body["hint"] == "ask"


@pytest.mark.django_db
def test_a_status_without_a_type_of_ours_is_about_blank(rf):
    from rest_framework.exceptions import APIException

    class Conflict(APIException):
        status_code = 409

    body = handle(Conflict("taken"), rf).data

    assert body["type"] == "about:blank"
    assert body["title"] == "Conflict"


@pytest.mark.django_db
def test_unavailable_backend_is_a_503_problem(rf):
    from rest_framework.exceptions import APIException

    class Down(APIException):
        status_code = 503

    body = handle(Down("Redis did not answer"), rf).data

    assert body["type"].endswith("/problems/service-unavailable/")
    assert body["detail"] == "Redis did not answer"
