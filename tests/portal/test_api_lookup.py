"""GET /v1/lookup: facts about a whole number (1 unit, scope "basic")."""

import pytest


@pytest.mark.django_db
def test_lookup_answers_facts_about_the_number(client, bearer):
    response = client.get("/v1/lookup?q=360", **bearer)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "number": 360,
        "is_prime": False,
        "prime_factors": [2, 2, 2, 3, 3, 5],
        "divisor_count": 24,
        "parity": "even",
        "is_perfect_square": False,
        "binary": "101101000",
        "hexadecimal": "168",
        "roman": "CCCLX",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("number", "prime", "factors", "roman"),
    [
        (1, False, [], "I"),
        (2, True, [2], "II"),
        (3999, False, [3, 31, 43], "MMMCMXCIX"),
        (4000, False, [2, 2, 2, 2, 2, 5, 5, 5], None),
        (999_999_937, True, [999_999_937], None),
        (1_000_000_000, False, [2] * 9 + [5] * 9, None),
    ],
)
def test_lookup_edges(client, bearer, number, prime, factors, roman):
    body = client.get(f"/v1/lookup?q={number}", **bearer).json()

    assert body["is_prime"] is prime
    assert body["prime_factors"] == factors
    assert body["roman"] == roman


@pytest.mark.django_db
def test_perfect_squares_are_recognised(client, bearer):
    assert client.get("/v1/lookup?q=1024", **bearer).json()["is_perfect_square"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "?q=", "?q=0", "?q=-5", "?q=1000000001", "?q=1.5", "?q=x"])
def test_out_of_range_or_missing_number_is_a_400(client, bearer, query):
    response = client.get(f"/v1/lookup{query}", **bearer)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "q"


@pytest.mark.django_db
def test_lookup_costs_one_unit_and_a_400_costs_nothing(client, bearer):
    client.get("/v1/lookup?q=12", **bearer)
    client.get("/v1/lookup?q=12", **bearer)
    client.get("/v1/lookup?q=nope", **bearer)

    usage = client.get("/v1/usage", **bearer).json()
    assert usage["units"] == 2


@pytest.mark.django_db
def test_lookup_needs_a_key(client):
    assert client.get("/v1/lookup?q=12").status_code == 401
