"""Shared plumbing of the bench scripts: a scratch database, a private Redis, gunicorn, and a
bounded HTTP load loop. Everything listens on 127.0.0.1 only and is torn down at exit.

    from bench._server import BenchServer, private_redis, drive
"""

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RedisServer:
    url: str
    pid: int
    # The command line and the directory it keeps its files in: a bench that kills the server
    # starts the same command again to restart it on the same port and files.
    argv: tuple[str, ...] = ()
    folder: str = ""


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def rss_kib(pid: int) -> int:
    """Resident memory of a process, in KiB (``VmRSS`` of /proc/<pid>/status, Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for process {pid}")


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 10) -> None:
    """Until something accepts connections on ``port`` (a server ``process`` just started)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{process.args!r} did not start") from None
            time.sleep(0.05)


@contextlib.contextmanager
def private_redis(appendfsync: str | None = None) -> Iterator[RedisServer]:
    """A redis-server of the bench's own, so INFO commandstats counts only what the bench sent
    and its CPU time is the bench's alone. No persistence by default; ``appendfsync``
    ("always", "everysec" or "no") turns the AOF on with that fsync policy."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    folder = tempfile.mkdtemp(prefix="mdk-bench-redis-")
    persistence = ["--appendonly", "no"]
    if appendfsync is not None:
        persistence = ["--appendonly", "yes", "--appendfsync", appendfsync]
    argv = (
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        *persistence,
        "--dir", folder,
        "--maxmemory-policy", "noeviction",
    )  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        yield RedisServer(
            url=f"redis://127.0.0.1:{port}/0", pid=server.pid, argv=argv, folder=folder
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class BenchServer:
    """gunicorn serving the project with a bench settings module on a scratch SQLite file, or
    on ``database_url`` (another server's database, or a scratch PostgreSQL database)."""

    settings_module: str
    workers: int = 4
    threads: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    database_url: str = ""
    # Metrics as production keeps them under gunicorn (docs/deploy.md, "Metrics"): in files of
    # an empty PROMETHEUS_MULTIPROC_DIR, one per worker, which every count writes to.
    multiprocess_metrics: bool = False

    def __post_init__(self):
        self.scratch = Path(tempfile.mkdtemp(prefix="mdk-bench-"))
        if not self.database_url:
            self.database_url = f"sqlite:///{self.scratch / 'bench.sqlite3'}"
        metrics_env = {}
        if self.multiprocess_metrics:
            (self.scratch / "prometheus").mkdir()
            metrics_env["PROMETHEUS_MULTIPROC_DIR"] = str(self.scratch / "prometheus")
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            "DATABASE_URL": self.database_url,
            "VAR_DIR": str(self.scratch),
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
            # No collected static files in a checkout; WhiteNoise would warn once per worker.
            "PYTHONWARNINGS": "ignore::UserWarning",
            **metrics_env,
            **self.extra_env,
        }
        self.process: subprocess.Popen | None = None

    def prepare(self) -> None:
        """Create the tables, then set Django up in this process on the same database, so the
        script can make tiers, accounts and keys with the project's own services."""
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--run-syncdb", "--verbosity", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        os.environ.update(self.env)
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        import django

        django.setup()

    # Seconds the workers get to import Django and answer ``ready_path``.
    start_seconds: ClassVar[float] = 30

    def serving_args(self) -> list[str]:
        """What gunicorn serves and how: the WSGI app on gthread workers."""
        return [
            "config.wsgi:application",
            "--worker-class", "gthread",
            "--threads", str(self.threads),
        ]  # fmt: skip

    def start(self, ready_path: str) -> None:
        # The server's log goes to a file (django.request logs every 429 at WARNING); its tail
        # is printed if the bench fails.
        self.log_path = self.scratch / "gunicorn.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                PYTHON, "-m", "gunicorn", *self.serving_args(),
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--keep-alive", "30",
                "--log-level", "warning",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited: {self.log_path.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", ready_path)
                if conn.getresponse().status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer within {self.start_seconds:g} s")

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        assert self.process is not None
        return [self.process.pid, *children_of(self.process.pid)]

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return sorted(children_of(self.process.pid))

    def errors(self) -> str:
        """The server log's lines at ERROR or worse (a 503, a traceback), for the report."""
        if not hasattr(self, "log_path"):
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if " ERROR " in line or "Traceback" in line)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


@dataclass
class LoadResult:
    statuses: Counter
    seconds: float

    @property
    def rate(self) -> float:
        return sum(self.statuses.values()) / self.seconds


def drive(
    port: int,
    path: str,
    *,
    headers: dict[str, str],
    requests: int,
    clients: int,
    expect: int | None = 200,
) -> LoadResult:
    """Send ``requests`` GETs from ``clients`` keep-alive connections started together.
    ``expect``: a status every answer must have (None: count whatever comes back)."""
    per_client = requests // clients
    statuses: Counter = Counter()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        seen: Counter = Counter()
        start.wait()
        for _ in range(per_client):
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            seen[response.status] += 1
        conn.close()
        with lock:
            statuses.update(seen)

    workers = [threading.Thread(target=loop) for _ in range(clients)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    result = LoadResult(statuses=statuses, seconds=time.perf_counter() - started)
    if expect is not None and set(statuses) != {expect}:
        raise SystemExit(f"{path}: expected only {expect}, got {dict(statuses)}")
    return result
