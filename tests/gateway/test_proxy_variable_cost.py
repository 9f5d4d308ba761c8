"""Variable cost: admission reserves the endpoint's maximum; the upstream's Meterdesk-Units
(0..max) is what the call costs, and the rest of the reservation is given back at once."""

import pytest

from tests.factories import EndpointFactory
from tests.gateway.servers import usage_of


def period_remaining(ratelimit: str) -> int:
    """``r`` of the "period" item of a RateLimit header (draft 11)."""
    item = next(part for part in ratelimit.split(",") if part.strip().startswith('"period"'))
    return int(next(p for p in item.split(";") if p.strip().startswith("r=")).split("=")[1])


@pytest.mark.parametrize(
    ("reported", "billed"),
    [
        ("4", 4),
        ("0", 0),
        ("10", 10),
        # Not a whole number in 0..max: the reservation holds (charged the maximum, logged).
        ("11", 10),
        ("-1", 10),
        ("2.5", 10),
        ("lots", 10),
    ],
)
def test_call_is_billed_what_the_upstream_reports(caller, upstream, api_key, reported, billed):
    EndpointFactory(
        upstream=upstream, operation_id="units", public_path="/units/{n}", cost=1, max_cost=10
    )

    response = caller.get(f"/v1/units/{reported}")

    assert response.status_code == 200
    assert "meterdesk-units" not in response.headers
    assert usage_of(api_key.account_id, "catalog/units") == (billed, 1)


def test_no_report_costs_the_declared_units(caller, upstream, api_key):
    EndpointFactory(
        upstream=upstream, operation_id="echo", public_path="/echo/{word}", cost=2, max_cost=10
    )

    assert caller.get("/v1/echo/hi").status_code == 200
    assert usage_of(api_key.account_id, "catalog/echo") == (2, 1)


def test_fixed_price_ignores_a_report(caller, upstream, api_key):
    EndpointFactory(
        upstream=upstream, operation_id="units", public_path="/units/{n}", cost=3, max_cost=3
    )

    assert caller.get("/v1/units/1").status_code == 200
    assert usage_of(api_key.account_id, "catalog/units") == (3, 1)


def test_headers_show_what_is_left_after_the_settled_units(caller, upstream, api_key, tier):
    EndpointFactory(
        upstream=upstream, operation_id="units", public_path="/units/{n}", cost=1, max_cost=50
    )

    first = caller.get("/v1/units/5")
    second = caller.get("/v1/units/5")

    # The reservation of 50 was settled to 5 before the headers were written: the period's
    # quota (10,000 units, no refill to blur it) is down 5 per call.
    assert [period_remaining(r.headers["ratelimit"]) for r in (first, second)] == [9995, 9990]
    assert usage_of(api_key.account_id, "catalog/units") == (10, 2)
