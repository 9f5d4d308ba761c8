"""The sync hot path's settle with a variable cost (issue 15): ``settle_decision`` keeps the
actual units, gives the rest back in one limiter call (none when nothing goes back), once, and
the headers it returns describe what was settled."""

import pytest
from django.http import HttpRequest, HttpResponse

from metering.hotpath import admit, policy_for, settle, settle_decision
from metering.limiter import get_limiter
from portal.keys.cache import key_cache
from tests.factories import AccountFactory, ApiKeyFactory, TierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def principal():
    tier = TierFactory(rate_limit_per_minute=60, burst=20, included_units=1000)
    key = ApiKeyFactory(account=AccountFactory(tier=tier))
    return key_cache.resolve(key.plaintext)


def used(principal) -> int | None:
    return get_limiter().quota_used(principal.account_id, policy_for(principal))


def test_the_actual_units_are_billed_and_the_headers_show_the_rest_given_back(principal):
    decision = admit(principal=principal, endpoint="generate", cost=10)

    headers = settle_decision(decision, status=200, units=3)

    assert used(principal) == 3
    assert headers["X-RateLimit-Remaining"] == "17"
    assert '"period";r=997;' in headers["RateLimit"]


def test_a_second_settle_changes_nothing_and_repeats_the_headers(principal, monkeypatch):
    decision = admit(principal=principal, endpoint="generate", cost=10)
    first = settle_decision(decision, status=200, units=3)
    monkeypatch.setattr(get_limiter(), "settle", pytest.fail)

    assert settle_decision(decision, status=500, units=0) == first
    assert used(principal) == 3


def test_a_call_that_cost_its_whole_reservation_makes_no_limiter_call(principal, monkeypatch):
    decision = admit(principal=principal, endpoint="generate", cost=10)
    monkeypatch.setattr(get_limiter(), "settle", pytest.fail)
    monkeypatch.setattr(get_limiter(), "give_back", pytest.fail)

    settle_decision(decision, status=200, units=None)

    assert decision.units == 10
    assert used(principal) == 10


def test_settle_on_a_response_takes_the_units_the_view_names(principal):
    request, response = HttpRequest(), HttpResponse(status=201)
    # The throttle sets the attribute on DRF's request; HttpRequest does not declare it.
    request.metering_decision = admit(  # type: ignore[attr-defined]
        principal=principal, endpoint="generate", cost=10
    )

    settle(request, response, units=6)

    assert used(principal) == 6
    assert response["X-RateLimit-Remaining"] == "14"
