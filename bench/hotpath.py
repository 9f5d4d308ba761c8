"""The API's hot path on gunicorn + Redis: throughput, Redis round trips, exactness.

Starts a private redis-server and gunicorn (gthread workers, 127.0.0.1, free ports) on a
scratch SQLite database, and measures in one run:

(a) requests/s of the lookup endpoint with authentication + throttle + metering (``full``, the
    shipped view) against the same view bare (``bare``: no authentication, no limiter), with
    authentication only (``auth``), and with authentication plus one Redis PING (``ping``: the
    round trip the limiter cannot do without, and nothing else). Routes run in interleaved
    rounds; each round's ratio to bare is kept, and the median is reported. The server's CPU
    time per request (gunicorn workers + Redis, from /proc) is reported too: on a shared or
    small host it is steadier than requests/s;
(b) Redis commands per request, from INFO commandstats over batches of admitted, refused (429)
    and failed (400) requests, and which of them clients sent (MONITOR tells a command a client
    sent from one a Lua script ran);
(c) requests admitted against the limit with 1, 4, 16 and 32 concurrent clients on one key
    (a burst of 100 units that refills one unit a minute, so the run itself refills nothing);
(d) the same load against DRF's SimpleRateThrottle ("100/hour" per key, in the same Redis
    through the Django cache), the baseline.

    .venv/bin/python bench/hotpath.py [--requests 1500] [--clients 8] [--workers 4] [--rounds 5]
"""

import argparse
import math
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

# Run as a script, this file has bench/ first on sys.path; the checkout's root makes its
# helpers importable by the one name everything else (and mypy) knows them by.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import BenchServer, cpu_seconds, drive, private_redis

LIMIT = 100
CONCURRENCY = [1, 4, 16, 32]
ROUTES = {
    "bare": "/bench/bare?q=360360",
    "auth": "/bench/auth?q=360360",
    "ping": "/bench/ping?q=360360",
    "full": "/bench/full?q=360360",
}
SHIPPED = "/v1/lookup?q=360360"


def make_key(*, slug: str, rate: int, burst: int) -> str:
    """A developer on a tier of its own, with one key; returns the full key."""
    from billing.models import Tier
    from portal.services import account_create, api_key_create
    from tests.factories import UserFactory

    tier, _ = Tier.objects.update_or_create(
        slug=slug,
        defaults={
            "name": slug,
            "included_units": 10**12,
            "rate_limit_per_minute": rate,
            "burst": burst,
            "scopes": ["basic"],
        },
    )
    account = account_create(owner=UserFactory(email=f"{slug}@example.com"))
    account.tier = tier
    account.save(update_fields=["tier"])
    _key, full = api_key_create(account=account, name=slug)
    return full


def commandstats(client) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in client.info("commandstats").items()
    }


def count_commands(client, port, path, headers, requests) -> dict[str, int]:
    client.config_resetstat()
    drive(port, path, headers=headers, requests=requests, clients=4, expect=None)
    stats = commandstats(client)
    for own in ("config|resetstat", "info"):  # the measurement's own two commands
        stats.pop(own, None)
    return stats


def monitor_sources(redis_url, port, path, headers, requests) -> dict[str, int]:
    """How many commands clients sent vs scripts ran, over a small batch (MONITOR is slow)."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    sources = {"client": 0, "lua": 0}
    done = threading.Event()

    def watch():
        with client.monitor() as monitor:
            for command in monitor.listen():
                if done.is_set():
                    return
                if command["command"].upper().startswith(("PING", "INFO")):
                    continue
                sources["lua" if command.get("client_type") == "lua" else "client"] += 1

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.3)
    drive(port, path, headers=headers, requests=requests, clients=2, expect=None)
    time.sleep(0.3)
    done.set()
    client.ping()  # wakes the monitor so that it sees ``done``
    watcher.join(timeout=5)
    return sources


def exactness(port, path, key_for, clients, requests) -> tuple[int, int, float]:
    """Admitted vs allowed for one fresh key under ``clients`` concurrent connections."""
    key = key_for(clients)
    result = drive(
        port,
        path,
        headers={"Authorization": f"Bearer {key}"},
        requests=requests,
        clients=clients,
        expect=None,
    )
    unexpected = set(result.statuses) - {200, 429}
    if unexpected:
        raise SystemExit(f"{path}: unexpected statuses {dict(result.statuses)}")
    # A burst of LIMIT with one unit back a minute (limiter), or LIMIT an hour (DRF): the
    # run's own seconds could add floor(seconds / 60) units at most.
    allowed = LIMIT + math.floor(result.seconds / 60)
    return result.statuses[200], allowed, result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500, help="per route and round (a)")
    parser.add_argument("--clients", type=int, default=8, help="client connections for (a)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--exact-requests", type=int, default=320, help="per level, (c)/(d)")
    parser.add_argument(
        "--redis-timeout-ms",
        type=int,
        default=250,
        help="METERING_REDIS_TIMEOUT_MS of the server (production default 50; on a small host "
        "whose CPUs the load saturates, a reply can wait longer than that for a CPU)",
    )
    args = parser.parse_args()

    with private_redis() as redis_server:
        server = BenchServer(
            "bench._settings",
            workers=args.workers,
            threads=args.threads,
            extra_env={
                "REDIS_URL": redis_server.url,
                "METERING_REDIS_URL": redis_server.url,
                "METERING_KEY_PREFIX": f"mdbench-{uuid.uuid4().hex[:6]}",
                "METERING_FAIL_MODE": "closed",
                "METERING_REDIS_TIMEOUT_MS": str(args.redis_timeout_ms),
            },
        )
        try:
            server.prepare()
            keys = {
                "fast": make_key(slug="bench-fast", rate=10**9, burst=10**9),
                "refused": make_key(slug="bench-refused", rate=1, burst=1),
            }
            server.start(ready_path="/bench/bare?q=1")
            try:
                run(server, redis_server, args, keys)
            finally:
                errors = server.errors()
                if errors:
                    print(f"\nServer errors during the run:\n{errors[-3000:]}")
        finally:
            server.stop()


def run(server, redis_server, args, keys) -> None:
    import redis

    port = server.port
    headers = {"Authorization": f"Bearer {keys['fast']}"}
    for path in [*ROUTES.values(), SHIPPED]:  # warm every worker: imports, key cache, scripts
        drive(port, path, headers=headers, requests=40 * args.workers, clients=args.clients)
    pids = [*server.pids(), redis_server.pid]

    # (a) throughput and server CPU per request, interleaved rounds
    rates: dict[str, list[float]] = {name: [] for name in ROUTES}
    cpu_us: dict[str, list[float]] = {name: [] for name in ROUTES}
    for _ in range(args.rounds):
        for name, path in ROUTES.items():
            before = cpu_seconds(pids)
            result = drive(
                port, path, headers=headers, requests=args.requests, clients=args.clients
            )
            cpu_us[name].append((cpu_seconds(pids) - before) / args.requests * 1e6)
            rates[name].append(result.rate)
    shipped = drive(port, SHIPPED, headers=headers, requests=args.requests, clients=args.clients)

    # (b) Redis commands per request
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    batch = 1000
    admitted = count_commands(client, port, SHIPPED, headers, batch)
    refused_headers = {"Authorization": f"Bearer {keys['refused']}"}
    drive(port, SHIPPED, headers=refused_headers, requests=2, clients=1, expect=None)
    refused = count_commands(client, port, SHIPPED, refused_headers, batch)
    failed = count_commands(client, port, "/v1/lookup?q=oops", headers, batch)
    sources = monitor_sources(redis_server.url, port, SHIPPED, headers, 200)

    # (c) and (d) exactness under concurrency, a fresh key for every level
    def limited_key(prefix):
        return lambda clients: make_key(slug=f"{prefix}-{clients}", rate=1, burst=LIMIT)

    limiter_rows = [
        exactness(port, "/v1/lookup?q=7", limited_key("exact"), clients, args.exact_requests)
        for clients in CONCURRENCY
    ]
    drf_rows = [
        exactness(port, "/bench/drf?q=7", limited_key("drf"), clients, args.exact_requests)
        for clients in CONCURRENCY
    ]

    report(
        args,
        rates=rates,
        cpu_us=cpu_us,
        shipped_rate=shipped.rate,
        batch=batch,
        stats={"admitted 200": admitted, "refused 429": refused, "failed 400": failed},
        sources=sources,
        limiter=limiter_rows,
        drf=drf_rows,
    )


def _per_request(stats: dict[str, int], batch: int) -> str:
    return ", ".join(
        f"{name} {calls / batch:.2f}" for name, calls in sorted(stats.items()) if calls
    )


def _over(ok: int, allowed: int) -> float:
    return max(0.0, (ok - allowed) / allowed * 100)


def _met(flag: bool) -> str:
    return "met" if flag else "MISSED"


def report(args, *, rates, cpu_us, shipped_rate, batch, stats, sources, limiter, drf) -> None:
    print(
        f"gunicorn gthread {args.workers} workers x {args.threads} threads, private Redis "
        f"(timeout {args.redis_timeout_ms} ms), SQLite, {os.cpu_count()} CPUs shared with the "
        f"load generator; (a) {args.clients} clients, {args.requests} requests per route and "
        f"round, {args.rounds} rounds"
    )
    print("\n(a) throughput: median of each round's ratio to bare; server CPU per request")
    ratios = {
        name: statistics.median(r / b for r, b in zip(rates[name], rates["bare"], strict=True))
        for name in ROUTES
    }
    cpu = {name: statistics.median(values) for name, values in cpu_us.items()}
    for name in ROUTES:
        runs = ", ".join(f"{rate:,.0f}" for rate in rates[name])
        print(
            f"  {name:<5} {statistics.median(rates[name]):>7,.0f} req/s  {ratios[name]:.2f} of "
            f"bare   CPU {cpu[name]:>5.0f} us/request ({cpu['bare'] / cpu[name]:.2f} of bare's "
            f"throughput by CPU)   rounds: {runs}"
        )
    print(f"  /v1/lookup (same view, routed as shipped): {shipped_rate:,.0f} req/s, one batch")

    print(f"\n(b) Redis commands per request ({batch} requests per batch, INFO commandstats)")
    for label, counts in stats.items():
        print(f"  {label}: {_per_request(counts, batch)}")
    print(
        f"  MONITOR over 200 admitted requests: {sources['client']} commands sent by clients, "
        f"{sources['lua']} run inside the Lua script"
    )

    print("\n(c) metering limiter, one key, burst 100 (+1 unit a minute): admitted vs allowed")
    for clients, (ok, allowed, seconds) in zip(CONCURRENCY, limiter, strict=True):
        print(
            f"  {clients:>2} clients: {ok:>3} admitted, {allowed} allowed, "
            f"{_over(ok, allowed):5.1f} % over ({seconds:.1f} s)"
        )
    print("\n(d) DRF SimpleRateThrottle 100/hour, one key, same load: admitted vs allowed")
    for clients, (ok, allowed, seconds) in zip(CONCURRENCY, drf, strict=True):
        print(
            f"  {clients:>2} clients: {ok:>3} admitted, {allowed} allowed, "
            f"{_over(ok, allowed):5.1f} % over ({seconds:.1f} s)"
        )

    admitted = stats["admitted 200"]
    evalsha = admitted.get("evalsha", 0) / batch
    one_trip = evalsha == 1 and sources["client"] == 200
    worst = max(_over(ok, allowed) for ok, allowed, _ in limiter)
    print("\nTargets")
    full = ratios["full"]
    print(f"  full path >= 80 % of bare (req/s):     {full:.0%}  {_met(full >= 0.8)}")
    print(f"    by server CPU per request:           {cpu['bare'] / cpu['full']:.0%}")
    print(f"    the round trip alone (ping vs auth): {ratios['ping'] / ratios['auth']:.0%} of auth")
    print(f"    full vs ping (the limiter's own work): {full / ratios['ping']:.0%}")
    print(f"  1 Redis round trip per admitted call:  {evalsha:.2f} EVALSHA  {_met(one_trip)}")
    print(f"  0 % over-admission at 32 clients:      {worst:.1f} %  {_met(worst == 0)}")


if __name__ == "__main__":
    main()
