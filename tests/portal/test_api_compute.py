"""POST /v1/compute: statistics of a list of numbers (5 units, scope "compute")."""

import pytest

from portal.api.endpoints.compute import COMPUTE_MAX_VALUES


def compute(client, headers, body):
    return client.post("/v1/compute", body, content_type="application/json", **headers)


@pytest.mark.django_db
def test_compute_describes_the_values(client, paid_bearer):
    response = compute(client, paid_bearer, {"values": [4, 1, 3, 2, 10], "percentiles": [50, 90]})

    assert response.status_code == 200
    assert response.json() == {
        "count": 5,
        "sum": 20.0,
        "mean": 4.0,
        "median": 3.0,
        "min": 1.0,
        "max": 10.0,
        "stdev": pytest.approx(3.5355339, rel=1e-6),
        "percentiles": {"50": 3.0, "90": pytest.approx(7.6)},
    }


@pytest.mark.django_db
def test_a_single_value_has_no_deviation(client, paid_bearer):
    body = compute(client, paid_bearer, {"values": [7.5]}).json()

    assert body["stdev"] is None
    assert body["median"] == 7.5
    assert body["percentiles"] == {}


@pytest.mark.django_db
def test_the_same_input_gives_the_same_answer(client, paid_bearer):
    payload = {"values": [0.1, 0.2, 0.3], "percentiles": [25, 99.9]}

    assert (
        compute(client, paid_bearer, payload).json() == compute(client, paid_bearer, payload).json()
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"values": []},
        {"values": [1e13]},
        {"values": [True, 2]},
        {"values": ["3", 2]},
        {"values": "1,2,3"},
        {"values": [1], "percentiles": [-1]},
        {"values": list(range(COMPUTE_MAX_VALUES + 1))},
        [1, 2, 3],
    ],
)
def test_bad_bodies_are_a_400(client, paid_bearer, body):
    response = compute(client, paid_bearer, body)

    assert response.status_code == 400
    assert response.json()["errors"]


@pytest.mark.django_db
def test_extremes_stay_finite(client, paid_bearer):
    values = [1e12] * COMPUTE_MAX_VALUES

    body = compute(client, paid_bearer, {"values": values}).json()

    assert body["sum"] == 1e16
    assert body["stdev"] == 0.0


@pytest.mark.django_db
def test_compute_costs_five_units(client, paid_bearer):
    compute(client, paid_bearer, {"values": [1, 2]})

    assert client.get("/v1/usage", **paid_bearer).json()["units"] == 5
