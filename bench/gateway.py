"""The gateway's cost: one run, three paths to the same upstream, as ratios against the run's
own baseline.

- ``direct``: the client calls the upstream itself;
- ``nginx``: through Debian's nginx, ``proxy_pass`` to the same upstream (keep-alive to it, no
  buffering of the answer), the reference proxy: a non-daemon child on a loopback port, with a
  config of this run's own;
- ``meterdesk``: through Meterdesk's gateway as deployed (docs/deploy.md): gunicorn with
  ``uvicorn_worker.UvicornWorker`` serving ``config.asgi`` (``--workers`` one per CPU by default),
  a private redis-server for the limiter, a scratch SQLite database with the upstream, two
  endpoints of cost 1 and a key on a tier that never refuses. Every call is authenticated,
  admitted and settled (one EVALSHA), signed and proxied.

The upstream is a minimal ASGI app under uvicorn (one process) answering a small JSON body after
``0 ms`` or ``20 ms`` (two processes, one per delay). Load comes from this script's threads, each
on a keep-alive connection (http.client), started together.

Measured, in interleaved rounds (the order of the three paths rotates each round; ratios are
taken within a round, then their median and spread reported, so the machine's load drifting
between rounds cancels out):

(a) 0 ms upstream, 8 clients: p50 and p99 latency of each path; Meterdesk's and nginx's added
    latency over direct (ms);
(b) 20 ms upstream, 64 clients: requests/s of each path; Meterdesk / nginx; and each proxy's
    CPU per request (its processes, Meterdesk's Redis with it), which does not depend on what
    else shares the host.

Targets (issue 15): Meterdesk adds <= 1.5 ms p50 at 8 clients; Meterdesk's req/s >= 0.9 x
nginx's at 64 clients with a 20 ms upstream.

    .venv/bin/python bench/gateway.py [--requests 2000] [--rounds 5] [--workers 2]

Needs nginx (``apt-get install -y nginx``) and redis-server on the PATH.
"""

import argparse
import asyncio
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import (
    PYTHON,
    ROOT,
    BenchServer,
    children_of,
    cpu_seconds,
    free_port,
    private_redis,
    wait_for_port,
)

PATHS = ("direct", "nginx", "meterdesk")
BODY = json.dumps({"ok": True, "word": "meterdesk"}).encode()


# --- The upstream: a minimal ASGI app (uvicorn bench.gateway:upstream_app) --------------------


async def upstream_app(scope, receive, send):
    """Answers every request with a small JSON body after BENCH_UPSTREAM_DELAY_MS."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    delay = float(os.environ.get("BENCH_UPSTREAM_DELAY_MS", "0")) / 1000
    if delay:
        await asyncio.sleep(delay)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


@dataclass
class Upstream:
    delay_ms: int
    port: int
    process: subprocess.Popen

    @classmethod
    def start(cls, delay_ms: int) -> "Upstream":
        port = free_port()
        process = subprocess.Popen(
            [
                PYTHON, "-m", "uvicorn", "bench.gateway:upstream_app",
                "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "--no-access-log",
            ],
            cwd=ROOT,
            env={**os.environ, "BENCH_UPSTREAM_DELAY_MS": str(delay_ms), "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        wait_for_port(port, process, seconds=60)
        return cls(delay_ms=delay_ms, port=port, process=process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# --- nginx, the reference proxy ----------------------------------------------------------------


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream zero {{ server 127.0.0.1:{zero}; keepalive 128; }}
    upstream slow {{ server 127.0.0.1:{slow}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location /zero/ {{
            proxy_pass http://zero/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
        location /slow/ {{
            proxy_pass http://slow/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    port: int
    folder: str
    process: subprocess.Popen

    @classmethod
    def start(cls, *, zero: int, slow: int) -> "Nginx":
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise SystemExit("nginx is not installed (apt-get install -y nginx)")
        folder = tempfile.mkdtemp(prefix="mdk-bench-nginx-")
        port = free_port()
        conf = Path(folder) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(folder=folder, zero=zero, slow=slow, port=port))
        process = subprocess.Popen([binary, "-p", folder, "-c", str(conf), "-e", "stderr"])
        wait_for_port(port, process)
        return cls(port=port, folder=folder, process=process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


# --- Meterdesk under gunicorn + uvicorn workers -------------------------------------------------


class Meterdesk(BenchServer):
    """BenchServer's scratch database and environment, served as deployed: ASGI."""

    # Workers import Django on a shared, loaded machine: give them time.
    start_seconds: ClassVar[float] = 180

    def serving_args(self) -> list[str]:
        return ["config.asgi:application", "-k", "uvicorn_worker.UvicornWorker"]


def sell(zero: int, slow: int) -> str:
    """The two upstreams (one per delay) with an endpoint of cost 1 each, and a developer on a
    tier that never refuses (bench/hotpath.py's make_key); returns the key."""
    from bench.hotpath import make_key
    from gateway.models import Endpoint, Upstream

    for name, port in (("zero", zero), ("slow", slow)):
        upstream = Upstream.objects.create(
            name=f"bench-{name}", base_url=f"http://127.0.0.1:{port}"
        )
        Endpoint.objects.create(
            upstream=upstream,
            operation_id=f"{name}Ping",
            method="GET",
            public_path=f"/{name}/ping",
            upstream_path="/ping",
            cost=1,
            max_cost=1,
        )
    return make_key(slug="bench-gateway", rate=10**9, burst=10**9)


# --- Load ----------------------------------------------------------------------------------------


@dataclass
class Load:
    latencies: list[float]
    seconds: float
    failures: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def drive(port: int, path: str, *, headers: dict[str, str], requests: int, clients: int) -> Load:
    """``requests`` GETs from ``clients`` keep-alive connections started together; each
    request's latency, the wall time, and the answers that were not a 200."""
    per_client = requests // clients
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        own: list[float] = []
        bad = 0
        conn.request("GET", path, headers=headers)  # warm the connection, not counted
        conn.getresponse().read()
        start.wait()
        for _ in range(per_client):
            began = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            own.append(time.perf_counter() - began)
            bad += response.status != 200
        conn.close()
        with lock:
            latencies.extend(own)
            failures[0] += bad

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return Load(latencies=latencies, seconds=time.perf_counter() - began, failures=failures[0])


def spread(values: list[float], unit: str = "", digits: int = 2) -> str:
    return (
        f"{statistics.median(values):.{digits}f}{unit} "
        f"({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    # One per CPU, as docs/deploy.md has the gateway deployed.
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    zero = Upstream.start(0)
    slow = Upstream.start(20)
    try:
        nginx = Nginx.start(zero=zero.port, slow=slow.port)
    except BaseException:
        # The upstreams are children holding this script's output open: a run that stops
        # here (no nginx) must not leave them behind.
        slow.stop()
        zero.stop()
        raise
    try:
        with private_redis() as redis_server:
            env = {
                "REDIS_URL": redis_server.url,
                "METERING_REDIS_URL": redis_server.url,
                "METERING_REDIS_TIMEOUT_MS": "250",
                "METERING_KEY_PREFIX": "mdbenchgw",
            }
            meterdesk = Meterdesk("config.settings", workers=args.workers, extra_env=env)
            try:
                meterdesk.prepare()
                key = sell(zero.port, slow.port)
                meterdesk.start(ready_path="/healthz")
                run(args, zero, slow, nginx, meterdesk, key, redis_server.pid)
            finally:
                meterdesk.stop()
    finally:
        nginx.stop()
        slow.stop()
        zero.stop()


def run(
    args,
    zero: Upstream,
    slow: Upstream,
    nginx: Nginx,
    meterdesk: Meterdesk,
    key: str,
    redis_pid: int,
):
    auth = {"Authorization": f"Bearer {key}"}
    targets = {
        "zero": {
            "direct": (zero.port, "/ping", {}),
            "nginx": (nginx.port, "/zero/ping", {}),
            "meterdesk": (meterdesk.port, "/v1/zero/ping", auth),
        },
        "slow": {
            "direct": (slow.port, "/ping", {}),
            "nginx": (nginx.port, "/slow/ping", {}),
            "meterdesk": (meterdesk.port, "/v1/slow/ping", auth),
        },
    }
    # Every path answers before anything is measured (and Meterdesk's route table is warm).
    for case in targets.values():
        for port, path, headers in case.values():
            load = drive(port, path, headers=headers, requests=40, clients=4)
            if load.failures:
                raise SystemExit(f"{path} on port {port}: {load.failures} answers were not 200")

    added_p50: dict[str, list[float]] = {"nginx": [], "meterdesk": []}
    added_p99: dict[str, list[float]] = {"nginx": [], "meterdesk": []}
    p50: dict[str, list[float]] = {path: [] for path in PATHS}
    p99: dict[str, list[float]] = {path: [] for path in PATHS}
    rates: dict[str, list[float]] = {path: [] for path in PATHS}
    ratio: list[float] = []
    # CPU of each proxy (its processes; Meterdesk's Redis with it) per request at 64 clients:
    # what it costs whatever CPUs the load generator and the upstream leave it.
    proxy_pids = {
        "nginx": [nginx.process.pid, *children_of(nginx.process.pid)],
        "meterdesk": [*meterdesk.pids(), redis_pid],
    }
    cpu_ms: dict[str, list[float]] = {"nginx": [], "meterdesk": []}
    failures = 0
    for round_ in range(args.rounds):
        order = PATHS[round_ % 3 :] + PATHS[: round_ % 3]
        latency = {}
        for name in order:
            port, path, headers = targets["zero"][name]
            latency[name] = drive(port, path, headers=headers, requests=args.requests, clients=8)
            failures += latency[name].failures
        for name in PATHS:
            p50[name].append(latency[name].percentile(0.50))
            p99[name].append(latency[name].percentile(0.99))
        for name in ("nginx", "meterdesk"):
            added_p50[name].append(p50[name][-1] - p50["direct"][-1])
            added_p99[name].append(p99[name][-1] - p99["direct"][-1])
        throughput = {}
        for name in order:
            port, path, headers = targets["slow"][name]
            pids = proxy_pids.get(name, [])
            cpu_before = cpu_seconds(pids)
            throughput[name] = drive(
                port, path, headers=headers, requests=args.requests, clients=64
            )
            if name in cpu_ms:
                cpu_ms[name].append((cpu_seconds(pids) - cpu_before) * 1000 / args.requests)
            failures += throughput[name].failures
            rates[name].append(throughput[name].rate)
        ratio.append(throughput["meterdesk"].rate / throughput["nginx"].rate)
        print(
            f"round {round_ + 1}: p50 ms direct {p50['direct'][-1]:.2f}, nginx "
            f"{p50['nginx'][-1]:.2f}, meterdesk {p50['meterdesk'][-1]:.2f}; req/s at 64 "
            f"clients direct {rates['direct'][-1]:.0f}, nginx {rates['nginx'][-1]:.0f}, "
            f"meterdesk {rates['meterdesk'][-1]:.0f}",
            flush=True,
        )

    load_average = os.getloadavg()
    print(
        f"\n{args.rounds} rounds x {args.requests} requests per path; Meterdesk: gunicorn "
        f"{args.workers} uvicorn workers, private Redis; nginx 1 worker; upstream: uvicorn, "
        f"1 process per delay; {os.cpu_count()} CPUs shared with the load generator; load "
        f"average at the end {load_average[0]:.1f} (1 min); answers not 200: {failures}"
    )
    print("\n(a) 0 ms upstream, 8 clients: latency, median over rounds (min-max), ms")
    for name in PATHS:
        print(f"  {name:10} p50 {spread(p50[name])}   p99 {spread(p99[name])}")
    for name in ("nginx", "meterdesk"):
        print(
            f"  {name} adds: p50 {spread(added_p50[name], ' ms')}, "
            f"p99 {spread(added_p99[name], ' ms')}"
        )
    print("\n(b) 20 ms upstream, 64 clients: requests/s, median over rounds (min-max)")
    for name in PATHS:
        print(f"  {name:10} {spread(rates[name], '', 0)}")
    print(f"  meterdesk / nginx: {spread(ratio)}")
    print("  proxy CPU per request (its processes, Meterdesk's Redis included), ms")
    for name, values in cpu_ms.items():
        print(f"  {name:10} {spread(values, '', 3)}")

    meets_latency = statistics.median(added_p50["meterdesk"]) <= 1.5
    meets_rate = statistics.median(ratio) >= 0.9
    print("\nTargets")
    print(
        f"  Meterdesk adds <= 1.5 ms p50 at 8 clients: "
        f"{statistics.median(added_p50['meterdesk']):.2f} ms  "
        f"{'met' if meets_latency else 'MISSED'}"
    )
    print(
        f"  Meterdesk >= 0.9 x nginx req/s (20 ms, 64 clients): "
        f"{statistics.median(ratio):.2f}  {'met' if meets_rate else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
