"""Billable usage lost when the metering Redis is killed, with the AOF fsynced every second
(``appendfsync everysec``) or on every write (``always``), and without persistence for reference.

Starts a private redis-server (AOF on) and gunicorn (gthread workers, 127.0.0.1, free ports) on
a scratch SQLite database; only the limiter uses that Redis (METERING_REDIS_URL; the cache and
Celery stay in-process), so a kill touches nothing but metering. Each round, for one mode:

1. a fresh "steady" account (a quota and a rate no round reaches) and a fresh "free" account
   (500 included units, refused past them), one key each;
2. the free account spends its 500 units, until its calls are refused (429);
3. ``--clients`` connections call /v1/lookup with the steady key for ``--seconds``; halfway
   through, Redis gets SIGKILL, and after ``--down`` seconds it is started again on the same
   port and directory (so from the same AOF). The web workers reconnect on their own: a failed
   command drops its connection and the next one opens a new one;
4. the free key calls again: every 200 now is a unit granted twice;
5. every minute is rolled up (``usage_rollup`` with a clock past the grace) and the steady
   account's ``UsageRollup`` units ("counted") are compared with the 200s its clients saw
   ("admitted"). A call whose script ran but whose reply the kill cut off is counted and
   answered 503: counted can exceed admitted by the calls in flight.

Modes run in interleaved rounds (everysec, always, everysec, always, ...; then "none" once:
without persistence a restart starts empty). Then the throughput of ``always`` against
``everysec``: the same server switched by CONFIG SET between interleaved rounds of
``--requests`` calls, reported as ratios (absolute rates on a shared host say little).

A SIGKILL stops the process, not the machine: the kernel keeps what Redis wrote, so this
measures a crashed or OOM-killed Redis. A host crash or power loss also drops what was written
but not fsynced: nothing with ``always``, about the last second with ``everysec`` (Redis
persistence docs, https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/);
the report turns that second into units at the measured rate.

    .venv/bin/python bench/redis_durability.py [--rounds 2] [--seconds 10] [--clients 8]
"""

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

# Run as a script, this file has bench/ first on sys.path; the checkout's root makes its
# helpers importable by the one name everything else (and mypy) knows them by.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import BenchServer, RedisServer, drive, private_redis, wait_for_port

LOOKUP = "/v1/lookup?q=360360"
FREE_UNITS = 500
# How each mode is set on the running server (CONFIG SET) and on the restart's command line.
MODES = {
    "everysec": {"appendonly": "yes", "appendfsync": "everysec"},
    "always": {"appendonly": "yes", "appendfsync": "always"},
    "none": {"appendonly": "no"},
}


def make_key(*, slug: str, included_units: int) -> tuple[int, str]:
    """A developer on a tier of its own (refused past its included units), with one key;
    returns the account's id and the full key."""
    from billing.models import Tier
    from portal.services import account_create, api_key_create
    from tests.factories import UserFactory

    tier, _ = Tier.objects.update_or_create(
        slug=slug,
        defaults={
            "name": slug,
            "included_units": included_units,
            "overage_policy": Tier.OveragePolicy.BLOCK,
            "rate_limit_per_minute": 10**9,
            "burst": 10**9,
            "scopes": ["basic"],
        },
    )
    account = account_create(owner=UserFactory(email=f"{slug}@example.com"))
    account.tier = tier
    account.save(update_fields=["tier"])
    _key, full = api_key_create(account=account, name=slug)
    return account.pk, full


class Redis:
    """The private Redis, killed and started again on its port and directory."""

    def __init__(self, server: RedisServer):
        self.server = server
        self.port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        self.pid = server.pid
        # The restarted process (None: still private_redis's own, which it reaps itself).
        self.process: subprocess.Popen | None = None
        self.mode = "everysec"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def set_mode(self, mode: str) -> None:
        client = self.client()
        for name, value in MODES[mode].items():
            client.config_set(name, value)
        # Switching the AOF on rewrites it in the background; kill only once it is written.
        while int(client.info("persistence")["aof_rewrite_in_progress"]):
            time.sleep(0.05)
        client.close()
        self.mode = mode

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def start(self) -> None:
        argv = list(self.server.argv)
        for name, value in MODES[self.mode].items():
            flag = f"--{name}"
            if flag in argv:
                argv[argv.index(flag) + 1] = value
            else:
                argv += [flag, value]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        self.pid = self.process.pid
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class Round:
    mode: str
    admitted: int
    counted: int
    # 200s per second before the kill: what one second of traffic is worth.
    rate: float
    refused: int
    regranted: int

    @property
    def lost(self) -> int:
        return max(0, self.admitted - self.counted)

    @property
    def over(self) -> int:
        return max(0, self.counted - self.admitted)


def traffic(port: int, key: str, clients: int, stop: threading.Event, seen: Counter) -> list:
    """``clients`` keep-alive connections calling LOOKUP until ``stop``; statuses into
    ``seen`` (a connection the server dropped is opened again)."""
    lock = threading.Lock()

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            try:
                conn.request("GET", LOOKUP, headers={"Authorization": f"Bearer {key}"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            with lock:
                seen[status] += 1
        conn.close()

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def calls(port: int, key: str, count: int) -> Counter:
    return drive(
        port, LOOKUP, headers={"Authorization": f"Bearer {key}"}, requests=count, clients=4,
        expect=None,
    ).statuses  # fmt: skip


def kill_round(server: BenchServer, redis: Redis, mode: str, args, number: int) -> Round:
    from django.db.models import Sum
    from django.utils import timezone

    from metering.limiter import set_limiter
    from metering.models import UsageRollup
    from metering.services import ROLLUP_GRACE_SECONDS, usage_rollup

    redis.set_mode(mode)
    steady_id, steady = make_key(slug=f"steady-{mode}-{number}", included_units=10**12)
    _free_id, free = make_key(slug=f"free-{mode}-{number}", included_units=FREE_UNITS)
    spent = calls(server.port, free, FREE_UNITS + 20)
    if spent[200] != FREE_UNITS:
        raise SystemExit(f"the free key got {dict(spent)} before the kill")

    seen: Counter = Counter()
    stop = threading.Event()
    started = time.perf_counter()
    threads = traffic(server.port, steady, args.clients, stop, seen)
    time.sleep(args.seconds / 2)
    before_kill = seen[200] / (time.perf_counter() - started)
    redis.kill()
    time.sleep(args.down)
    redis.start()
    time.sleep(args.seconds / 2)
    stop.set()
    for thread in threads:
        thread.join()

    regranted = calls(server.port, free, FREE_UNITS + 20)[200]
    set_limiter(None)  # this process's connections died with the old server
    usage_rollup(now=timezone.now() + timedelta(seconds=ROLLUP_GRACE_SECONDS + 120))
    counted = UsageRollup.objects.filter(account_id=steady_id).aggregate(units=Sum("units"))
    return Round(
        mode=mode,
        admitted=seen[200],
        counted=counted["units"] or 0,
        rate=before_kill,
        refused=sum(n for status, n in seen.items() if status != 200),
        regranted=regranted,
    )


def throughput(server: BenchServer, redis: Redis, args) -> list[float]:
    """always/everysec requests/s ratios, one per pair of interleaved rounds."""
    _id, key = make_key(slug="throughput", included_units=10**12)
    headers = {"Authorization": f"Bearer {key}"}
    drive(server.port, LOOKUP, headers=headers, requests=400, clients=args.clients)  # warm up
    ratios = []
    for _ in range(args.throughput_rounds):
        rates = {}
        for mode in ("everysec", "always"):
            redis.set_mode(mode)
            result = drive(
                server.port, LOOKUP, headers=headers, requests=args.requests,
                clients=args.clients,
            )  # fmt: skip
            rates[mode] = result.rate
        ratios.append(rates["always"] / rates["everysec"])
    return ratios


def limiter_throughput(redis: Redis, args) -> list[float]:
    """always/everysec ratios of the limiter's own calls per second, sent straight to Redis by
    ``--clients`` threads (no web tier): what the fsync costs Redis when Django is not the
    bottleneck. Interleaved rounds, as above."""
    from datetime import UTC, datetime

    from metering.limiter.base import Policy
    from metering.limiter.redis import RedisLimiter

    limiter = RedisLimiter(redis.server.url, timeout_ms=5000, prefix=f"mdraw-{uuid.uuid4().hex}")
    policy = Policy(
        rate_per_minute=10**9,
        burst=10**9,
        quota=10**12,
        overage_policy="block",
        overage_cap=None,
        period_start=datetime(2000, 1, 1, tzinfo=UTC),
        period_end=datetime(2100, 1, 1, tzinfo=UTC),
    )
    per_client = args.requests // args.clients

    def hits(account_id: int) -> None:
        for _ in range(per_client):
            limiter.hit(
                account_id=account_id, key_id=1, endpoint="lookup", cost=1, policy=policy, seed=0
            )

    ratios = []
    for _ in range(args.throughput_rounds):
        rates = {}
        for mode in ("everysec", "always"):
            redis.set_mode(mode)
            threads = [threading.Thread(target=hits, args=(n,)) for n in range(args.clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rates[mode] = per_client * args.clients / (time.perf_counter() - started)
        ratios.append(rates["always"] / rates["everysec"])
    limiter.close()
    return ratios


def report(rounds: list[Round], ratios: list[float], raw_ratios: list[float]) -> None:
    print(
        f"\n{'mode':<9} {'admitted':>9} {'counted':>8} {'lost':>6} {'lost s':>7} "
        f"{'over':>5} {'non-200':>8} {'re-granted':>11}"
    )
    for r in rounds:
        print(
            f"{r.mode:<9} {r.admitted:>9} {r.counted:>8} {r.lost:>6} {r.lost / r.rate:>7.2f} "
            f"{r.over:>5} {r.refused:>8} {r.regranted:>11}"
        )
    everysec = [r.rate for r in rounds if r.mode == "everysec"]
    if everysec:
        rate = statistics.median(everysec)
        print(
            f"\neverysec on a host crash (not measurable here): up to ~1 s of traffic, "
            f"~{rate:.0f} units at this run's {rate:.0f} admitted/s (2 s worst case: "
            f"~{2 * rate:.0f})"
        )
    for label, values in (
        ("throughput always/everysec, /v1/lookup through gunicorn", ratios),
        ("throughput always/everysec, limiter calls straight to Redis", raw_ratios),
    ):
        if values:
            rounds_text = ", ".join(f"{x:.2f}" for x in values)
            print(f"{label}: median {statistics.median(values):.2f} (rounds: {rounds_text})")
    print(
        "\nlost: admitted 200s not in the rollups; lost s: lost / the 200s per second before "
        "the kill;\nover: counted but answered non-200 (in flight at the kill); re-granted: 200s "
        f"the free key\n(refused after its {FREE_UNITS} units before the kill) got after the "
        "restart"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="kill rounds per AOF mode")
    parser.add_argument("--seconds", type=float, default=10, help="traffic per kill round")
    parser.add_argument("--down", type=float, default=1.0, help="seconds Redis stays dead")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--requests", type=int, default=1200, help="per throughput round")
    parser.add_argument("--throughput-rounds", type=int, default=4)
    parser.add_argument(
        "--redis-timeout-ms",
        type=int,
        default=250,
        help="METERING_REDIS_TIMEOUT_MS of the server (production default 50; on a small "
        "shared host a reply can wait longer than that for a CPU)",
    )
    args = parser.parse_args()

    with private_redis(appendfsync="everysec") as redis_server:
        redis = Redis(redis_server)
        server = BenchServer(
            "bench._settings",
            workers=args.workers,
            threads=args.threads,
            extra_env={
                "METERING_REDIS_URL": redis_server.url,
                "METERING_KEY_PREFIX": f"mddurable-{uuid.uuid4().hex[:6]}",
                "METERING_FAIL_MODE": "closed",
                "METERING_REDIS_TIMEOUT_MS": str(args.redis_timeout_ms),
            },
        )
        try:
            server.prepare()
            server.start(ready_path="/healthz")
            modes = ["everysec", "always"] * args.rounds + ["none"]
            rounds = [
                kill_round(server, redis, mode, args, number) for number, mode in enumerate(modes)
            ]
            # "none" left the server without an AOF; the throughput rounds turn it back on.
            ratios = throughput(server, redis, args)
            report(rounds, ratios, limiter_throughput(redis, args))
        finally:
            server.stop()
            redis.stop()


if __name__ == "__main__":
    main()
