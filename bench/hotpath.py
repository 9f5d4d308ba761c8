"""The API's hot path on gunicorn + Redis: throughput and server CPU, Redis round trips, exactness.

Starts a private redis-server and two gunicorn servers (gthread workers, 127.0.0.1, free ports)
on one scratch SQLite database: ``shipped`` runs the project as deployed (settings
``config.settings``: the real URLconf and middleware; metrics in a PROMETHEUS_MULTIPROC_DIR, as
docs/deploy.md has it), ``bench`` the same settings with a bench-only URLconf
(``bench/_urls.py``) that adds stripped-down copies of the lookup view. Both have the same
workers and threads (4 x 4 by default: production's 2 per CPU x 4 on this 2-CPU host).
It measures, in one run:

(a) requests/s and server CPU per request (gunicorn master + workers, from /proc) of five routes
    in interleaved rounds (the order rotates each round; each round's ratios are kept and their
    median and spread reported):
      bare      /bench/bare      the lookup view without authentication, permission or limiter,
                                 through the whole middleware chain a page takes: the baseline;
      bare-nocsp /bench/nocsp/bare  the same without the CSP header (bench/_settings.py): the
                                 baseline as it was before issue 13 added the header to pages;
      bare-api  /v1/bench/bare   the same view through the middleware an API request takes;
      ping      /v1/bench/ping   + authentication and one Redis PING on the limiter's pool: the
                                 round trip the limiter cannot do without, and nothing else;
      shipped   /v1/lookup       the shipped endpoint on the shipped server: authentication,
                                 throttle + metering (one EVALSHA), headers.
(b) Redis commands per request, from INFO commandstats over batches of admitted, refused (429)
    and failed (400) requests, and which of them clients sent (MONITOR tells a command a client
    sent from one a Lua script ran); the run fails unless an admitted call is 1.00 EVALSHA;
(c) requests admitted against the limit with 1, 4, 16 and 32 concurrent clients on one key
    (a burst of 100 units that refills one unit a minute, so the run itself refills nothing);
(d) the same load against DRF's SimpleRateThrottle ("100/hour" per key, in the same Redis
    through the Django cache), the baseline.

    .venv/bin/python bench/hotpath.py [--requests 1000] [--clients 8] [--workers 4] [--rounds 15]
"""

import argparse
import math
import os
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# Run as a script, this file has bench/ first on sys.path; the checkout's root makes its
# helpers importable by the one name everything else (and mypy) knows them by.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import BenchServer, cpu_seconds, drive, private_redis

LIMIT = 100
CONCURRENCY = [1, 4, 16, 32]
SHIPPED = "/v1/lookup?q=360360"
# Commands MONITOR shows that are not a call's: the bench's own, and redis-py's connection setup.
HANDSHAKE = ("PING", "INFO", "HELLO", "CLIENT", "SELECT", "AUTH")
# Route name -> (server, path); "bench" and "shipped" are the two gunicorn servers.
ROUTES = {
    "bare": ("bench", "/bench/bare?q=360360"),
    "bare-nocsp": ("bench", "/bench/nocsp/bare?q=360360"),
    "bare-api": ("bench", "/v1/bench/bare?q=360360"),
    "ping": ("bench", "/v1/bench/ping?q=360360"),
    "shipped": ("shipped", SHIPPED),
}


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
                # The measurement's own, and a new connection's handshake (a worker thread
                # that needs one more connection): not part of any call.
                if command["command"].upper().startswith(HANDSHAKE):
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


@dataclass
class Rounds:
    """Per route, one figure per round: requests/s, and CPU µs per request of the route's
    gunicorn server (master + workers) and of Redis."""

    rate: dict[str, list[float]]
    web_cpu_us: dict[str, list[float]]
    redis_cpu_us: dict[str, list[float]]

    def ratios(self, name: str) -> tuple[list[float], list[float]]:
        """Each round's ratio of ``name`` to bare: by requests/s, and by web CPU per request
        (bare's CPU over this route's: the throughput the CPU would allow, relative to bare)."""
        by_rate = [r / b for r, b in zip(self.rate[name], self.rate["bare"], strict=True)]
        by_cpu = [
            b / c for c, b in zip(self.web_cpu_us[name], self.web_cpu_us["bare"], strict=True)
        ]
        return by_rate, by_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="per route and round (a)")
    parser.add_argument("--clients", type=int, default=8, help="client connections for (a)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--exact-requests", type=int, default=320, help="per level, (c)/(d)")
    parser.add_argument(
        "--redis-timeout-ms",
        type=int,
        default=250,
        help="METERING_REDIS_TIMEOUT_MS of the servers (production default 50; on a small "
        "host whose CPUs the load saturates, a reply can wait longer than that for a CPU)",
    )
    args = parser.parse_args()

    with private_redis() as redis_server:
        env = {
            "REDIS_URL": redis_server.url,
            "METERING_REDIS_URL": redis_server.url,
            "METERING_KEY_PREFIX": f"mdbench-{uuid.uuid4().hex[:6]}",
            "METERING_FAIL_MODE": "closed",
            "METERING_REDIS_TIMEOUT_MS": str(args.redis_timeout_ms),
        }
        bench = BenchServer(
            "bench._settings", workers=args.workers, threads=args.threads, extra_env=env
        )
        # The shipped settings on the bench server's database (made by bench.prepare()).
        shipped = BenchServer(
            "config.settings",
            workers=args.workers,
            threads=args.threads,
            extra_env=env,
            database_url=bench.database_url,
            multiprocess_metrics=True,
        )
        servers = {"bench": bench, "shipped": shipped}
        try:
            bench.prepare()
            keys = {
                "fast": make_key(slug="bench-fast", rate=10**9, burst=10**9),
                "refused": make_key(slug="bench-refused", rate=1, burst=1),
            }
            bench.start(ready_path="/bench/bare?q=1")
            shipped.start(ready_path="/healthz")
            try:
                run(servers, redis_server, args, keys)
            finally:
                for name, server in servers.items():
                    errors = server.errors()
                    if errors:
                        print(f"\nServer errors during the run ({name}):\n{errors[-3000:]}")
        finally:
            shipped.stop()
            bench.stop()


def measure_rounds(servers, redis_pid, args, headers) -> Rounds:
    """(a): every route once per round, the order rotated each round so no route always
    follows the same one (a CPU still busy with the last batch, a cache another route warmed)."""
    pids = {name: server.pids() for name, server in servers.items()}
    rounds = Rounds(
        rate={name: [] for name in ROUTES},
        web_cpu_us={name: [] for name in ROUTES},
        redis_cpu_us={name: [] for name in ROUTES},
    )
    names = list(ROUTES)
    for index in range(args.rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            server_name, path = ROUTES[name]
            web_before = cpu_seconds(pids[server_name])
            redis_before = cpu_seconds([redis_pid])
            result = drive(
                servers[server_name].port,
                path,
                headers=headers,
                requests=args.requests,
                clients=args.clients,
            )
            web = cpu_seconds(pids[server_name]) - web_before
            redis_cpu = cpu_seconds([redis_pid]) - redis_before
            rounds.rate[name].append(result.rate)
            rounds.web_cpu_us[name].append(web / args.requests * 1e6)
            rounds.redis_cpu_us[name].append(redis_cpu / args.requests * 1e6)
    return rounds


def run(servers, redis_server, args, keys) -> None:
    import redis

    port = servers["shipped"].port
    headers = {"Authorization": f"Bearer {keys['fast']}"}
    for server_name, path in [*ROUTES.values(), ("bench", "/bench/drf?q=1")]:
        # Warm every worker: imports, key cache, scripts.
        server = servers[server_name]
        drive(server.port, path, headers=headers, requests=40 * args.workers, clients=args.clients)

    # (a) throughput and server CPU per request, interleaved rounds
    rounds = measure_rounds(servers, redis_server.pid, args, headers)

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
    drf_port = servers["bench"].port
    drf_rows = [
        exactness(drf_port, "/bench/drf?q=7", limited_key("drf"), clients, args.exact_requests)
        for clients in CONCURRENCY
    ]

    report(
        args,
        rounds=rounds,
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


def _spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(args, *, rounds: Rounds, batch, stats, sources, limiter, drf) -> None:
    load = os.getloadavg()
    print(
        f"gunicorn gthread {args.workers} workers x {args.threads} threads per server, private "
        f"Redis (timeout {args.redis_timeout_ms} ms), SQLite, {os.cpu_count()} CPUs shared with "
        f"the load generator; (a) {args.clients} clients, {args.requests} requests per route "
        f"and round, {args.rounds} rounds; load average at the end {load[0]:.1f} (1 min), "
        f"{load[1]:.1f} (5 min)"
    )
    print(
        "\n(a) per route: median req/s; ratio to bare per round by req/s and by web CPU per "
        "request, median (min-max);\n    CPU us per request of gunicorn (master + workers) and "
        "of Redis, median (min-max)"
    )
    for name in ROUTES:
        by_rate, by_cpu = rounds.ratios(name)
        print(
            f"  {name:<8} {statistics.median(rounds.rate[name]):>6,.0f} req/s   "
            f"x bare: {_spread(by_rate)} by req/s, {_spread(by_cpu)} by CPU   "
            f"web {_spread(rounds.web_cpu_us[name], '.0f')} us, "
            f"Redis {_spread(rounds.redis_cpu_us[name], '.0f')} us"
        )
        print(f"           req/s by round: {', '.join(f'{r:,.0f}' for r in rounds.rate[name])}")

    def cpu_gap(high: str, low: str) -> str:
        gaps = [
            h - low_us
            for h, low_us in zip(rounds.web_cpu_us[high], rounds.web_cpu_us[low], strict=True)
        ]
        return _spread(gaps, ".0f")

    print("  web CPU per request, differences within each round, median (min-max):")
    for high, low, meaning in [
        ("bare", "bare-nocsp", "a page's CSP header"),
        ("bare-nocsp", "bare-api", "the middleware an API request skips"),
        ("ping", "bare-api", "authentication + one round trip"),
        ("shipped", "ping", "the limiter's work beyond the round trip"),
    ]:
        print(f"    {high} - {low}: {cpu_gap(high, low)} us ({meaning})")

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
    by_rate, by_cpu = rounds.ratios("shipped")
    rate_ratio, cpu_ratio = statistics.median(by_rate), statistics.median(by_cpu)
    # The same two ratios against the baseline without a page's CSP header.
    strict = Rounds(
        rate={**rounds.rate, "bare": rounds.rate["bare-nocsp"]},
        web_cpu_us={**rounds.web_cpu_us, "bare": rounds.web_cpu_us["bare-nocsp"]},
        redis_cpu_us=rounds.redis_cpu_us,
    )
    strict_rate, strict_cpu = (statistics.median(values) for values in strict.ratios("shipped"))
    print("\nTargets (shipped /v1/lookup against bare, the same rounds; [against bare-nocsp])")
    print(
        f"  >= 0.85 x bare by req/s:               {rate_ratio:.2f}  {_met(rate_ratio >= 0.85)}"
        f"  [{strict_rate:.2f}  {_met(strict_rate >= 0.85)}]"
    )
    print(
        f"  >= 0.80 x bare by server CPU/request:  {cpu_ratio:.2f}  {_met(cpu_ratio >= 0.80)}"
        f"  [{strict_cpu:.2f}  {_met(strict_cpu >= 0.80)}]"
    )
    print(f"  1 Redis round trip per admitted call:  {evalsha:.2f} EVALSHA  {_met(one_trip)}")
    print(f"  0 % over-admission at 32 clients:      {worst:.1f} %  {_met(worst == 0)}")
    if not one_trip or worst > 0:
        raise SystemExit("round trips or exactness: target missed (see above)")


if __name__ == "__main__":
    main()
