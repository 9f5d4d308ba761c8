"""Limits stay exact through the gateway: 32 clients at once get exactly the calls the tier
allows, the reservation of a variable cost's maximum included."""

import threading
from collections import Counter

import httpx

from tests.factories import AccountFactory, ApiKeyFactory, EndpointFactory, TierFactory
from tests.gateway.servers import usage_of

CLIENTS = 32


def call_at_once(url: str, key: str) -> list[httpx.Response]:
    """One call per client, all released together."""
    start = threading.Barrier(CLIENTS)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(headers={"X-API-Key": key}, timeout=30) as client:
            start.wait()
            response = client.get(url)
            with lock:
                answers.append(response)

    threads = [threading.Thread(target=one) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_quota_admits_exactly_the_allowed_calls(meterdesk, upstream):
    tier = TierFactory(slug="tiny", included_units=10, rate_limit_per_minute=6000)
    key = ApiKeyFactory(account=AccountFactory(tier=tier))
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")

    answers = call_at_once(f"{meterdesk.url}/v1/echo/hi", key.plaintext)

    assert Counter(a.status_code for a in answers) == {200: 10, 429: 22}
    refused = [a.json() for a in answers if a.status_code == 429]
    assert {body["type"].rsplit("/", 2)[-2] for body in refused} == {"quota-exceeded"}
    assert all(a.headers.get("ratelimit") for a in answers)
    assert usage_of(key.account_id, "catalog/echo") == (10, 10)


def test_rate_limit_admits_exactly_the_burst(meterdesk, upstream):
    # 12 units a minute: one comes back every 5 s, far longer than the calls take.
    tier = TierFactory(slug="slow", included_units=10_000, rate_limit_per_minute=12)
    key = ApiKeyFactory(account=AccountFactory(tier=tier))
    EndpointFactory(upstream=upstream, operation_id="echo", public_path="/echo/{word}")

    answers = call_at_once(f"{meterdesk.url}/v1/echo/hi", key.plaintext)

    assert Counter(a.status_code for a in answers) == {200: 12, 429: 20}
    assert all(a.headers.get("retry-after") for a in answers if a.status_code == 429)


def test_variable_cost_reserves_its_maximum_while_in_flight(meterdesk, upstream):
    tier = TierFactory(slug="metered", included_units=20, rate_limit_per_minute=6000)
    key = ApiKeyFactory(account=AccountFactory(tier=tier))
    EndpointFactory(
        upstream=upstream, operation_id="units", public_path="/units/{n}", cost=1, max_cost=5
    )

    # Each call will cost 1, but while all 32 are in flight each holds its maximum (5): the
    # quota of 20 admits exactly 4, never more than the period could pay for.
    answers = call_at_once(f"{meterdesk.url}/v1/units/1?sleep=2", key.plaintext)

    assert Counter(a.status_code for a in answers) == {200: 4, 429: 28}
    assert usage_of(key.account_id, "catalog/units") == (4, 4)
