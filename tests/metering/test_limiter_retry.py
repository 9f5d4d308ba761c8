"""A slow reply is not a 503, and a retried call is never counted twice (issue 14).

A timeout says nothing of whether the script ran: the request may have run with its reply
lost, or may still be waiting in Redis's input buffer and run later. The limiter sends the same
request once more under the same token (hit.lua returns the first admission's reply instead of
counting again), and when that fails too it voids the token, so a late copy counts nothing and
an admitted one is given back. These tests make each case happen for real: a TCP proxy between
the limiter and Redis holds back, on chosen connections, the requests or the replies for
longer than the limiter's timeout. Redis database 12 (a single server, REDIS_URL's host).
"""

import contextlib
import socket
import threading
import time
from urllib.parse import urlparse

import pytest
import redis

from metering.limiter.base import LimiterUnavailable, Outcome
from metering.limiter.redis import LUA_DIR, RedisLimiter
from tests.loops import run_on_own_loop
from tests.metering.workers import policy as make_policy
from tests.services import redis_url

pytestmark = pytest.mark.redis

TIMEOUT_MS = 300
# Longer than the timeout, so a held-back copy arrives after the limiter gave up on it.
HELD_BACK = 1.0
PREFIX = "mdretry"
ACCOUNT = 7


class HoldingProxy:
    """Forwards TCP to Redis; on connection ``i`` (in the order accepted) the script call is
    held back ``requests[i]`` seconds and its reply ``replies[i]`` (0 past the lists). The
    connection's handshake (CLIENT SETINFO, SELECT) passes at once: only the EVALSHA and what
    follows are held. A held-back request still reaches Redis after its client hung up, as one
    already in flight would. A connection whose index is in ``refused`` is closed as it is
    accepted, as by a server that just died."""

    def __init__(self, target: tuple[str, int], *, requests=(), replies=(), refused=()):
        self.target = target
        self.requests, self.replies = list(requests), list(replies)
        self.refused = set(refused)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            index, self.accepted = self.accepted, self.accepted + 1
            if index in self.refused:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            script_sent = threading.Event()
            hold_request = self.requests[index] if index < len(self.requests) else 0
            hold_reply = self.replies[index] if index < len(self.replies) else 0

            def requests(chunk: bytes, hold=hold_request, sent=script_sent) -> float:
                if b"EVALSHA" not in chunk.upper():
                    return 0
                sent.set()
                return hold

            def replies(chunk: bytes, hold=hold_reply, sent=script_sent) -> float:
                return hold if sent.is_set() else 0

            directions = ((client, upstream, requests), (upstream, client, replies))
            for source, sink, holding in directions:
                threading.Thread(
                    target=self._pump, args=(source, sink, holding), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, holding):
        try:
            while chunk := source.recv(65536):
                time.sleep(holding(chunk))
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self):
        self.server.close()
        for sock in self.sockets:
            sock.close()


def _redis_db12() -> str:
    parsed = urlparse(redis_url())
    return parsed._replace(path="/12").geturl()


@pytest.fixture
def direct():
    """The limiter without a proxy, to read what Redis holds; its scripts loaded, so the
    proxied limiter's first EVALSHA is its only command."""
    limiter = RedisLimiter(_redis_db12(), timeout_ms=2000, prefix=PREFIX)
    limiter.reset()
    plain = redis.Redis.from_url(_redis_db12())
    for name in ("hit.lua", "give_back.lua"):
        plain.script_load((LUA_DIR / name).read_text())
    plain.close()
    yield limiter
    limiter.reset()
    limiter.close()


@pytest.fixture
def proxied():
    made: list[tuple[HoldingProxy, RedisLimiter]] = []

    def make(*, requests=(), replies=(), refused=()) -> tuple[HoldingProxy, RedisLimiter]:
        parsed = urlparse(_redis_db12())
        upstream = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        proxy = HoldingProxy(upstream, requests=requests, replies=replies, refused=refused)
        limiter = RedisLimiter(
            f"redis://127.0.0.1:{proxy.port}/12", timeout_ms=TIMEOUT_MS, prefix=PREFIX
        )
        made.append((proxy, limiter))
        return proxy, limiter

    yield make
    for proxy, limiter in made:
        limiter.close()
        proxy.close()


def hit_once(limiter):
    return limiter.hit(
        account_id=ACCOUNT, key_id=1, endpoint="lookup", cost=3, policy=POLICY, seed=0
    )


# Real time (the limiter uses Redis's clock), in a period that started yesterday.
POLICY = make_policy(rate_per_minute=600, burst=600, quota=1000)


def counted(direct) -> tuple[int | None, int, int]:
    """(quota counter, units, requests) Redis holds for the account."""
    usage = [count for counts in direct.live_usage(ACCOUNT).values() for count in counts]
    return (
        direct.quota_used(ACCOUNT, POLICY),
        sum(count.units for count in usage),
        sum(count.requests for count in usage),
    )


def test_a_late_reply_is_retried_and_the_call_counted_once(direct, proxied):
    # The first attempt runs at once; its reply comes after the timeout.
    proxy, limiter = proxied(replies=[HELD_BACK])

    decision = hit_once(limiter)

    assert decision.outcome == Outcome.ADMITTED
    assert decision.quota_used == 3
    assert proxy.accepted == 2
    assert counted(direct) == (3, 3, 1)


def test_a_late_request_runs_after_its_retry_and_counts_nothing(direct, proxied):
    # The first attempt reaches Redis only after the retry was admitted.
    proxy, limiter = proxied(requests=[HELD_BACK])

    decision = hit_once(limiter)
    assert decision.outcome == Outcome.ADMITTED
    time.sleep(HELD_BACK + 0.5)  # the held-back copy has run by now

    assert proxy.accepted == 2
    assert counted(direct) == (3, 3, 1)


def test_a_call_neither_attempt_of_which_arrived_in_time_is_voided(direct, proxied):
    # Both attempts reach Redis late; the void (third connection) is there before them.
    proxy, limiter = proxied(requests=[HELD_BACK, HELD_BACK])

    with pytest.raises(LimiterUnavailable, match="attempt 2 of 2"):
        hit_once(limiter)
    time.sleep(HELD_BACK + 0.5)

    assert proxy.accepted == 3
    assert counted(direct) == (None, 0, 0)


def test_a_call_that_ran_but_was_never_answered_is_given_back(direct, proxied):
    # Both attempts run at once (the second finds the first's admission); neither reply
    # arrives in time; the void finds the call admitted and gives it back.
    proxy, limiter = proxied(replies=[HELD_BACK, HELD_BACK])

    with pytest.raises(LimiterUnavailable, match="attempt 2 of 2"):
        hit_once(limiter)

    assert proxy.accepted == 3
    assert counted(direct) == (0, 0, 0)
    # The rate window is given back too: a full burst is available again.
    assert hit_once(direct).rate_remaining == POLICY.burst - 3


def test_a_void_that_could_not_reach_redis_is_sent_after_the_next_answered_call(direct, proxied):
    # A primary that ran the call and died before answering: both attempts ran, neither reply
    # came, and the void found no server (third connection refused).
    _, limiter = proxied(replies=[HELD_BACK, HELD_BACK], refused=[2])

    with pytest.raises(LimiterUnavailable, match="sent again after the next call"):
        hit_once(limiter)
    # Refused, yet counted: until Redis answers again, the void waits in the process.
    assert counted(direct) == (3, 3, 1)

    decision = hit_once(limiter)

    # The next call is counted, and the refused one given back: what was served is billed.
    assert decision.outcome == Outcome.ADMITTED
    assert counted(direct) == (3, 3, 1)
    # Sent after the call's own script: its decision still saw the refused call's units.
    assert decision.quota_used == 6


def test_the_asyncio_path_sends_a_waiting_void_too(direct, proxied):
    _, limiter = proxied(replies=[HELD_BACK, HELD_BACK], refused=[2])
    with pytest.raises(LimiterUnavailable):
        hit_once(limiter)

    decision = run_on_own_loop(
        limiter.hit_async(
            account_id=ACCOUNT, key_id=1, endpoint="lookup", cost=3, policy=POLICY, seed=0
        )
    )

    assert decision.outcome == Outcome.ADMITTED
    assert counted(direct) == (3, 3, 1)


def test_a_refusal_is_not_recorded_and_a_repeat_decides_afresh(direct, proxied):
    tight = make_policy(rate_per_minute=60, burst=1, quota=1000)
    direct.hit(account_id=ACCOUNT, key_id=1, endpoint="lookup", cost=1, policy=tight, seed=0)
    # The refusal's reply is late; its retry is refused again (nothing was counted either time).
    proxy, limiter = proxied(replies=[HELD_BACK])

    decision = limiter.hit(
        account_id=ACCOUNT, key_id=1, endpoint="lookup", cost=1, policy=tight, seed=0
    )

    assert decision.outcome == Outcome.RATE_LIMITED
    assert proxy.accepted == 2
    assert direct.quota_used(ACCOUNT, tight) == 1
