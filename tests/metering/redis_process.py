"""A redis-server of a test's own: a free loopback port, the test's own directory, the options the
test names; killed with SIGKILL and started again from the same files when the test says so.

The machine's Redis (REDIS_URL) is shared and its configuration is not the test's to change;
a server of one's own can run without persistence, with an AOF, or with CONFIG refused.
"""

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from metering.limiter import set_limiter
from tests.services import redis_server_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    def __init__(self, folder: Path, options: tuple[str, ...]):
        self.folder = folder
        self.port = free_port()
        self.argv = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(folder),
            "--save", "",
            "--appendonly", "no",
            "--maxmemory-policy", "noeviction",
            # Later options win: the test's own.
            *options,
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def start(self) -> None:
        """Start it (again: same port, same directory, so the same AOF) and wait until it has
        loaded its data and answers."""
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        client = self.client()
        try:
            while True:
                try:
                    client.ping()  # refused with LOADING until the AOF is read back
                    return
                except redis.RedisError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        log_text = (self.folder / "redis.log").read_text()
                        raise RuntimeError(f"redis-server did not start:\n{log_text}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last save, no last fsync."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def redis_process(folder: Path, *options: str) -> Iterator[RedisProcess]:
    """A started redis-server with ``options`` (e.g. "--appendonly", "yes"), stopped at exit."""
    server = RedisProcess(folder, options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def limiter_on(settings, server: RedisProcess) -> None:
    """Point this process's limiter at ``server`` (``settings``: pytest-django's fixture, which
    puts METERING_REDIS_URL back after the test)."""
    settings.METERING_REDIS_URL = server.url
    set_limiter(None)  # built again from the settings on next use
