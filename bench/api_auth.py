"""Requests/s of an authenticated /v1/ call against the same view without authentication.

Starts gunicorn (several workers, 127.0.0.1, a free port) on a scratch SQLite database, makes a
developer with a key on a tier whose limits never refuse, and drives three routes of that one
server in interleaved rounds with the same bounded loop (threads, http.client, keep-alive):

    bare   /bench/bare?q=…   LookupView without authentication, permission or limiter
    auth   /bench/auth?q=…   the same view with ApiKeyAuthentication + TierScopePermission
    full   /v1/lookup?q=…    the shipped endpoint: authentication, permission and the limiter

and prints requests/s (median of the rounds) and the ratios to bare. Every request must be a
200; anything else fails the run. With REDIS_URL set the server uses Redis (cache and limiter)
as in production; point it at a Redis whose data you do not need.

    .venv/bin/python bench/api_auth.py [--requests 1500] [--threads 8] [--workers 2] [--rounds 12]
"""

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ROUTES = {
    "bare": "/bench/bare?q=360360",
    "auth": "/bench/auth?q=360360",
    "full": "/v1/lookup?q=360360",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(env: dict[str, str]) -> str:
    """Tables, a tier that never refuses, a developer and a key; returns the key."""
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--run-syncdb", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from billing.models import Tier
    from portal.services import account_create, api_key_create
    from tests.factories import UserFactory

    tier, _ = Tier.objects.update_or_create(
        slug="bench",
        defaults={
            "name": "Bench",
            "included_units": 10**15,
            "rate_limit_per_minute": 10**9,
            "burst": 10**9,
            "scopes": ["basic"],
            "is_default": True,
        },
    )
    account = account_create(owner=UserFactory(email="bench@example.com"))
    account.tier = tier
    account.save(update_fields=["tier"])
    _key, full = api_key_create(account=account, name="bench")
    return full


def authenticate_cost(key: str, calls: int = 5_000) -> tuple[float, float]:
    """Microseconds per warm ``ApiKeyAuthentication.authenticate`` and per request built for
    it (the baseline), in this process: the part of a request the key is responsible for."""
    from django.test import RequestFactory
    from rest_framework.request import Request

    from portal.api.authentication import ApiKeyAuthentication

    factory = RequestFactory()
    auth = ApiKeyAuthentication()
    auth.authenticate(Request(factory.get("/v1/lookup", HTTP_AUTHORIZATION=f"Bearer {key}")))

    def per_call(with_auth: bool) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            request = Request(factory.get("/v1/lookup", HTTP_AUTHORIZATION=f"Bearer {key}"))
            if with_auth:
                auth.authenticate(request)
        return (time.perf_counter() - started) / calls * 1e6

    # The fastest of several runs: load elsewhere only ever adds time.
    baseline = min(per_call(False) for _ in range(9))
    with_auth = min(per_call(True) for _ in range(9))
    return with_auth - baseline, baseline


def wait_until_up(port: int, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/bench/bare?q=1")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within 30 s")


def drive(port: int, path: str, headers: dict[str, str], requests: int, threads: int) -> float:
    """Send ``requests`` GETs from ``threads`` keep-alive connections; returns requests/s."""
    per_thread = requests // threads
    failures: list[str] = []

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(per_thread):
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures.append(f"{path}: {response.status}")
                return
        conn.close()

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"non-200 answers: {failures[:3]}")
    return per_thread * threads / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500, help="per route and round")
    parser.add_argument("--threads", type=int, default=8, help="client connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--server-threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="mdk-bench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench._settings",
        "DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}",
        "VAR_DIR": str(scratch),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
        "API_KEY_LAST_USED_FLUSH_SECONDS": "60",
        # Whitenoise warns that collectstatic never ran; the bench serves no static files.
        "PYTHONWARNINGS": "ignore:No directory at",
    }
    key = prepare(env)
    # Other work on the machine moves the figures; the run reports the load it saw.
    load_before = os.getloadavg()[0]
    headers = {"Authorization": f"Bearer {key}"}
    port = free_port()
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(args.server_threads),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_until_up(port, server)
        # Warm every worker's key cache and imports before anything is timed.
        for path in ROUTES.values():
            drive(port, path, headers, requests=50 * args.workers, threads=args.threads)
        rates: dict[str, list[float]] = {name: [] for name in ROUTES}
        names = list(ROUTES)
        for round_number in range(args.rounds):
            # Each round starts with a different route, so drift (CPU clock, other load) on
            # this shared machine does not always favour the same one.
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                rates[name].append(drive(port, ROUTES[name], headers, args.requests, args.threads))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    mode = "Redis" if os.environ.get("REDIS_URL") else "embedded (in-process limiter)"
    print(
        f"gunicorn gthread, {args.workers} workers x {args.server_threads} threads, "
        f"{args.threads} client threads, {args.requests} requests per route and round, "
        f"{args.rounds} rounds, {os.cpu_count()} CPUs, {mode}, "
        f"load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )
    for name in ROUTES:
        runs = rates[name]
        print(
            f"  {name:<5} median {statistics.median(runs):>6,.0f} req/s "
            f"(rounds {min(runs):,.0f}-{max(runs):,.0f})"
        )
    # Ratios are taken within each round (the routes ran back to back) and then the median, so
    # a burst of load elsewhere on the machine moves one round's pair, not the result.
    for name in ("auth", "full"):
        ratios = [run / bare for run, bare in zip(rates[name], rates["bare"], strict=True)]
        print(
            f"ratio {name}/bare: {statistics.median(ratios):.2f} "
            f"(rounds {min(ratios):.2f}-{max(ratios):.2f})"
        )
    auth_us, request_us = authenticate_cost(key)
    print(
        f"in-process: warm authenticate() {auth_us:.1f} µs per call "
        f"(building the test request alone: {request_us:.1f} µs)"
    )


if __name__ == "__main__":
    main()
