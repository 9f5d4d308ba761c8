"""A soak of the shipped API: two gunicorn nodes at ~80 % of their measured capacity for minutes.

Two nodes run the project as deployed (settings ``config.settings``, gunicorn gthread) on one
scratch PostgreSQL database and one private Redis for the limiter (a second private Redis holds
the Django cache and the Celery broker, so the first one's memory is the limiter's alone). Many
accounts, each with keys on a tier whose limits no call reaches, so no 429 is expected. Steps:

1. capacity: a short ramp of closed-loop clients (8, 16, 32) spread over both nodes; the best
   requests/s is the capacity;
2. warm-up at the soak's pace (workers' caches, the key cache, Redis's token hashes fill up);
3. the soak: ``--clients`` paced clients (half on each node, each on its own keep-alive
   connection, sending on a fixed schedule) at ``--load`` x capacity for ``--seconds``, the
   usage rollup running once a minute as Celery beat runs it in production.

Reported: answers by status (target: nothing but 200), p50/p99 latency, each worker's resident
memory (VmRSS) after the warm-up and at the end (target: < 5 % growth), and the limiter Redis's
``used_memory`` per active account and per key.

    .venv/bin/python bench/soak.py [--seconds 300] [--clients 32] [--accounts 250]

PostgreSQL: ``--database-url`` (default postgres://postgres@127.0.0.1:5432/meterdesk_perf), a
scratch database this script creates and drops; SQLite cannot be shared by two nodes under load.
"""

import argparse
import http.client
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# Run as a script, this file has bench/ first on sys.path; the checkout's root makes its
# helpers importable by the one name everything else (and mypy) knows them by.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import BenchServer, private_redis, rss_kib

PATH = "/v1/lookup?q=360360"
RAMP = [8, 16, 32]


@dataclass
class Tally:
    """What the clients saw: answers by status (or exception name) and latencies in seconds."""

    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, statuses: Counter, latencies: list[float]) -> None:
        with self.lock:
            self.statuses.update(statuses)
            self.latencies.extend(latencies)


def _psql(database_url: str, sql: str) -> None:
    """Run one statement on the server's ``postgres`` database (CREATE/DROP DATABASE)."""
    parts = urlsplit(database_url)
    subprocess.run(
        [
            "psql", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
            "-U", parts.username or "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
            "-qc", sql,
        ],
        check=True,
        env={**os.environ, "PGPASSWORD": parts.password or ""},
    )  # fmt: skip


def make_keys(*, accounts: int, keys_per_account: int) -> list[str]:
    """Accounts on one tier that no call of the soak can exhaust, each with its keys."""
    from billing.models import Tier
    from portal.services import account_create, api_key_create
    from tests.factories import UserFactory

    tier, _ = Tier.objects.update_or_create(
        slug="soak",
        defaults={
            "name": "Soak",
            "included_units": 10**12,
            "rate_limit_per_minute": 10**9,
            "burst": 10**9,
            "scopes": ["basic"],
        },
    )
    keys = []
    for index in range(accounts):
        account = account_create(owner=UserFactory(email=f"soak-{index}@example.com"))
        account.tier = tier
        account.save(update_fields=["tier"])
        for number in range(keys_per_account):
            _key, full = api_key_create(account=account, name=f"soak {number}")
            keys.append(full)
    return keys


def closed_loop(ports: list[int], keys: list[str], *, clients: int, seconds: float) -> float:
    """Requests/s of ``clients`` connections sending back to back, spread over the nodes."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def loop(index: int) -> None:
        rng = random.Random(index)
        conn = http.client.HTTPConnection("127.0.0.1", ports[index % len(ports)], timeout=30)
        while time.monotonic() < stop:
            headers = {"Authorization": f"Bearer {rng.choice(keys)}"}
            conn.request("GET", PATH, headers=headers)
            response = conn.getresponse()
            response.read()
            counts[index] += 1
        conn.close()

    threads = [threading.Thread(target=loop, args=(index,)) for index in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def paced(
    ports: list[int], keys: list[str], *, clients: int, rate: float, seconds: float, tally: Tally
) -> float:
    """``clients`` connections, each sending on a fixed schedule so that together they send
    ``rate`` requests/s. A client that falls behind sends at once (it never sends a burst to
    catch up); the latency is the request's own, from sending to the last byte of the answer.
    Returns the rate achieved."""
    interval = clients / rate
    stop = time.monotonic() + seconds
    sent = [0] * clients

    def loop(index: int) -> None:
        rng = random.Random(1000 + index)
        port = ports[index % len(ports)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        statuses: Counter = Counter()
        latencies: list[float] = []
        # Spread the clients' first sends over one interval.
        due = time.monotonic() + interval * index / clients
        while due < stop:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            headers = {"Authorization": f"Bearer {rng.choice(keys)}"}
            started = time.perf_counter()
            try:
                conn.request("GET", PATH, headers=headers)
                response = conn.getresponse()
                response.read()
                statuses[response.status] += 1
            except (OSError, http.client.HTTPException) as exc:
                statuses[type(exc).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            latencies.append(time.perf_counter() - started)
            sent[index] += 1
            due = max(due + interval, time.monotonic())
        conn.close()
        tally.add(statuses, latencies)

    threads = [threading.Thread(target=loop, args=(index,)) for index in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(sent) / (time.monotonic() - started)


def every_minute(stop: threading.Event, job) -> threading.Thread:
    """Run ``job`` once a minute until ``stop`` is set (Celery beat's rollup, in production)."""

    def loop() -> None:
        while not stop.wait(60):
            job()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def rollup() -> None:
    from django.db import close_old_connections

    from metering.services import usage_rollup

    result = usage_rollup()
    close_old_connections()
    print(f"    rollup: {result.buckets} buckets, {result.rows} rows, {result.units:,} units")


def redis_memory(client) -> dict[str, int]:
    """The limiter Redis's used memory, its keys, and the accounts among them."""
    accounts = {key.split("}", 1)[0] for key in client.scan_iter(match="*{acct:*", count=1000)}
    return {
        "used_memory": int(client.info("memory")["used_memory"]),
        "keys": int(client.dbsize()),
        "accounts": len(accounts),
        # Each node's pools open connections as their threads first need them; more during
        # the soak would mean connections dropped (a timeout, an error) and made again.
        "connections": int(client.info("stats")["total_connections_received"]),
    }


def memory_by_kind(client) -> dict[str, tuple[int, int]]:
    """Bytes and count of the limiter's keys by kind (rate, q, ver, m, u, d, t; MEMORY USAGE)."""
    kinds: dict[str, list[int]] = {}
    for key in client.scan_iter(match="*{acct:*", count=1000):
        kind = key.split("}:", 1)[1].split(":", 1)[0]
        usage = client.memory_usage(key) or 0
        slot = kinds.setdefault(kind, [0, 0])
        slot[0] += usage
        slot[1] += 1
    return {kind: (total, count) for kind, (total, count) in sorted(kinds.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=300, help="the soak's length")
    parser.add_argument("--warmup", type=int, default=30, help="seconds at pace before it")
    parser.add_argument("--load", type=float, default=0.8, help="fraction of the capacity")
    parser.add_argument("--clients", type=int, default=32, help="paced clients, both nodes")
    parser.add_argument("--accounts", type=int, default=250)
    parser.add_argument("--keys-per-account", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per node")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--ramp-seconds", type=float, default=8, help="per capacity step")
    parser.add_argument(
        "--redis-timeout-ms",
        type=int,
        default=50,
        help="METERING_REDIS_TIMEOUT_MS of the nodes (the production default, 50)",
    )
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/meterdesk_perf",
        help="a scratch PostgreSQL database, created and dropped by this script",
    )
    args = parser.parse_args()
    database = urlsplit(args.database_url).path.lstrip("/")
    _psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}"')
    _psql(args.database_url, f'CREATE DATABASE "{database}"')
    try:
        with private_redis() as limiter_redis, private_redis() as cache_redis:
            soak(args, limiter_redis, cache_redis)
    finally:
        from django.conf import settings

        if settings.configured:  # the script's own connections, before the DROP
            from django.db import connections

            connections.close_all()
        _psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def soak(args, limiter_redis, cache_redis) -> None:
    import redis

    env = {
        "REDIS_URL": cache_redis.url,
        "METERING_REDIS_URL": limiter_redis.url,
        "METERING_KEY_PREFIX": f"mdsoak-{uuid.uuid4().hex[:6]}",
        "METERING_FAIL_MODE": "closed",
        "METERING_REDIS_TIMEOUT_MS": str(args.redis_timeout_ms),
        # Tasks a node queues go to a queue nobody consumes here.
        "CELERY_TASK_DEFAULT_QUEUE": f"soak-{os.getpid()}",
        "SECRET_KEY": uuid.uuid4().hex * 2,
    }
    nodes = [
        BenchServer(
            "config.settings",
            workers=args.workers,
            threads=args.threads,
            extra_env=env,
            database_url=args.database_url,
            multiprocess_metrics=True,
        )
        for _ in range(2)
    ]
    client = redis.Redis.from_url(limiter_redis.url, decode_responses=True)
    empty = int(client.info("memory")["used_memory"])
    try:
        print(f"migrating {args.database_url} ...", flush=True)
        nodes[0].prepare()
        keys = make_keys(accounts=args.accounts, keys_per_account=args.keys_per_account)
        for node in nodes:
            node.start(ready_path="/healthz")
        ports = [node.port for node in nodes]
        run(args, nodes, ports, keys, client, empty)
    finally:
        for index, node in enumerate(nodes):
            errors = node.errors()
            if errors:
                print(f"\nnode {index} errors:\n{errors[-3000:]}")
            node.stop()


def run(args, nodes, ports, keys, client, empty) -> None:
    load_start = os.getloadavg()
    print(
        f"two nodes x {args.workers} workers x {args.threads} threads, PostgreSQL, private "
        f"Redis (timeout {args.redis_timeout_ms} ms), {args.accounts} accounts x "
        f"{args.keys_per_account} keys, {os.cpu_count()} CPUs shared with the clients; load "
        f"average at the start {load_start[0]:.1f} (1 min), {load_start[1]:.1f} (5 min)"
    )
    closed_loop(ports, keys, clients=8, seconds=3)  # imports, key caches, scripts
    print("\n1. capacity (closed loop, both nodes):")
    capacity = 0.0
    for clients in RAMP:
        rate = closed_loop(ports, keys, clients=clients, seconds=args.ramp_seconds)
        capacity = max(capacity, rate)
        print(f"   {clients:>2} clients: {rate:,.0f} req/s")
    target = args.load * capacity
    print(f"   capacity {capacity:,.0f} req/s; the soak's pace {target:,.0f} req/s")

    print(f"\n2. warm-up, {args.warmup} s at pace")
    warm = Tally()
    paced(ports, keys, clients=args.clients, rate=target, seconds=args.warmup, tally=warm)
    workers = {pid: index for index, node in enumerate(nodes) for pid in node.worker_pids()}
    rss_start = {pid: rss_kib(pid) for pid in workers}
    redis_start = redis_memory(client)

    print(f"\n3. soak, {args.seconds} s at {target:,.0f} req/s, {args.clients} paced clients")
    tally = Tally()
    stop = threading.Event()
    samples: list[tuple[float, dict[int, int]]] = []

    def sample_memory() -> None:
        started = time.monotonic()
        while not stop.wait(60):
            samples.append((time.monotonic() - started, {pid: rss_kib(pid) for pid in workers}))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    rollups = every_minute(stop, rollup)
    achieved = paced(
        ports, keys, clients=args.clients, rate=target, seconds=args.seconds, tally=tally
    )
    stop.set()
    rss_end = {pid: rss_kib(pid) for pid in workers}
    redis_end = redis_memory(client)
    by_kind = memory_by_kind(client)
    rollups.join(timeout=1)
    load_end = os.getloadavg()
    report(
        args,
        achieved=achieved,
        target=target,
        tally=tally,
        workers=workers,
        rss=(rss_start, rss_end, samples),
        redis=(empty, redis_start, redis_end, by_kind),
        keys=len(keys),
        load=load_end,
    )


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(args, *, achieved, target, tally, workers, rss, redis, keys, load) -> None:
    rss_start, rss_end, samples = rss
    empty, redis_start, redis_end, by_kind = redis
    total = sum(tally.statuses.values())
    errors = {status: count for status, count in tally.statuses.items() if status != 200}
    print(f"   sent {total:,} requests, {achieved:,.0f} req/s (pace {target:,.0f})")
    print(f"   load average at the end {load[0]:.1f} (1 min), {load[1]:.1f} (5 min)")
    print("\nAnswers by status:", dict(sorted(tally.statuses.items(), key=str)))
    print(
        f"Latency: p50 {_percentile(tally.latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {_percentile(tally.latencies, 0.99) * 1000:.1f} ms, "
        f"max {max(tally.latencies) * 1000:.1f} ms"
    )
    print("\nResident memory per worker (VmRSS, KiB) after the warm-up -> at the end:")
    growths = []
    for pid, node in sorted(workers.items(), key=lambda item: (item[1], item[0])):
        growth = (rss_end[pid] - rss_start[pid]) / rss_start[pid] * 100
        growths.append(growth)
        trail = " -> ".join(f"{sample[pid]:,}" for _, sample in samples)
        print(
            f"   node {node} worker {pid}: {rss_start[pid]:,} -> {rss_end[pid]:,} "
            f"({growth:+.1f} %); each minute: {trail}"
        )
    used = redis_end["used_memory"] - empty
    print(
        f"\nLimiter Redis: used_memory {redis_end['used_memory']:,} B ({used:,} B above the "
        f"empty server's {empty:,}; {redis_start['used_memory'] - empty:,} after the warm-up), "
        f"{redis_end['keys']:,} keys of {redis_end['accounts']} accounts ({keys} API keys)"
    )
    print(
        f"   connections opened during the soak: "
        f"{redis_end['connections'] - redis_start['connections']} (after the warm-up: "
        f"{redis_start['connections']})"
    )
    print(
        f"   per active account: {used / max(1, redis_end['accounts']):,.0f} B; per Redis key: "
        f"{used / max(1, redis_end['keys']):,.0f} B; per API key: {used / keys:,.0f} B"
    )
    for kind, (size, count) in by_kind.items():
        print(f"   {kind:<4} {count:>6,} keys, {size:>12,} B, {size / count:,.0f} B each")
    worst = max(growths)
    p99 = _percentile(tally.latencies, 0.99) * 1000
    print("\nTargets")
    print(f"  0 answers but 200:            {sum(errors.values())}  {_met(not errors)}")
    print(f"  RSS growth per worker < 5 %:  worst {worst:+.1f} %  {_met(worst < 5)}")
    p50 = _percentile(tally.latencies, 0.5) * 1000
    print(f"  p50/p99 latency (reported):   {p50:.1f} / {p99:.1f} ms")


def _met(flag: bool) -> str:
    return "met" if flag else "MISSED"


if __name__ == "__main__":
    main()
