"""``make run``: the whole product in one process, on the embedded defaults.

Migrates, starts the bundled Stripe emulator when no Stripe key is set, seeds the demo (with the
demo upstream: a small API in a process of its own, imported from its OpenAPI document and sold
through the gateway), starts Celery beat in a thread (tasks run eagerly in this process, so the
in-process limiter's counters are rolled up by the same process that holds them), then serves
HTTP with uvicorn: ASGI, as production does, so the gateway's proxy runs async.

What it prints is for a developer watching a terminal: what to sign in with, then the URL, last,
once the port is bound. The jobs' routine lines (beat sending a task every minute, each task
succeeding) stay below WARNING unless LOG_LEVEL=DEBUG asks for them; the jobs log themselves
when they did something, and every failure is still a WARNING or an ERROR.
"""

import io
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from config import celery_app
from portal.checks import exposure_warning, hosts_exposed

logger = logging.getLogger(__name__)

# Loggers that say "all is well" once a minute or on every start: beat sending each due task,
# Celery's trace of each task that succeeded (a failure is logged at ERROR, still shown), the
# emulator loading its state file.
ROUTINE_LOGGERS = ("celery.beat", "celery.app.trace", "devtools.stripe_emulator")
# The demo upstream's OpenAPI document, imported on every start (idempotent).
DEMO_OPENAPI = Path(settings.BASE_DIR) / "gateway" / "demo_openapi.yaml"
DEMO_UPSTREAM_NAME = "demo"


class Command(BaseCommand):
    help = "Run the portal with its jobs (and the Stripe emulator when no Stripe key is set)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1)."
        )
        parser.add_argument("--port", type=int, default=8000, help="Port to bind (default 8000).")
        parser.add_argument("--no-jobs", action="store_true", help="Do not run the beat jobs.")
        parser.add_argument("--no-seed", action="store_true", help="Do not seed the demo data.")
        parser.add_argument(
            "--upstream-port",
            type=int,
            default=8001,
            help="Port of the demo upstream sold through the gateway (default 8001).",
        )

    def handle(
        self,
        *args,
        host: str,
        port: int,
        no_jobs: bool,
        no_seed: bool,
        upstream_port: int = 8001,
        **options,
    ):
        if settings.REDIS_URL:
            raise CommandError(
                "serve runs the embedded mode; with REDIS_URL set run gunicorn, "
                "`celery -A config worker` and `celery -A config beat` (see the README)."
            )
        # Bound beyond the loopback, any Host header can be sent to it, whatever ALLOWED_HOSTS
        # says: warned here, as the system check warns about ALLOWED_HOSTS.
        if exposed := hosts_exposed([host]):
            warning = exposure_warning(exposed=exposed, setting="--host")
            self.stderr.write(self.style.WARNING(f"{warning.msg}\n  {warning.hint}"))
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
            Path(settings.EMAIL_FILE_PATH).mkdir(parents=True, exist_ok=True)
        verbose = options.get("verbosity", 1) > 1
        quiet_routine_logs()
        fresh = database_is_fresh()
        if fresh:
            self.stdout.write("Creating the database (the first run takes about a minute)...")
        call_command("migrate", interactive=False, verbosity=0)
        emulator = self._start_emulator() if settings.STRIPE_USE_EMULATOR else None
        if not no_seed:
            # What seeding did (tiers made, Stripe objects registered) is news on the first run;
            # on every later start it only says "up to date".
            seeded = io.StringIO()
            call_command("seed_demo", stdout=seeded, no_color=True, no_logins=True)
            if fresh or verbose:
                self.stdout.write(seeded.getvalue().rstrip("\n"))
        upstream = None
        if not no_seed:
            upstream = self._start_demo_upstream(upstream_port, say=fresh or verbose)
        if not no_jobs:
            self._start_beat()
        banner = self._banner(demo_logins=not no_seed, emulator=emulator, upstream=upstream)
        # A stop (Ctrl+C or SIGTERM) first rolls up every counter this process holds: the
        # in-process limiter keeps usage in memory, and usage is never to be lost. uvicorn
        # handles both while it serves and raises them again once it has shut down.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            self._serve(host, port, banner)
        except KeyboardInterrupt:
            # Ctrl+C or SIGTERM, raised again by uvicorn once it has shut down: a normal stop.
            pass
        finally:
            if upstream is not None:
                upstream.stop()
            self._drain_usage()

    def _serve(self, host: str, port: int, banner: list[str]) -> None:
        """config.asgi under uvicorn in this process (the embedded mode is one process);
        production runs the same application under gunicorn's uvicorn workers."""
        config = uvicorn.Config(
            "config.asgi:application",
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            # Open streams (server-sent events through the gateway) get this long to finish.
            timeout_graceful_shutdown=5,
        )
        server = EmbeddedServer(config, banner=banner, stdout=self.stdout)
        try:
            server.run()
        except SystemExit:
            # uvicorn exits when it cannot bind, after logging why.
            raise CommandError(
                f"Cannot listen on {host}:{port}; is another server using that port? "
                "Set PORT (make run) or --port to a free one."
            ) from None

    def _start_demo_upstream(self, port: int, *, say: bool) -> "DemoUpstreamProcess":
        """Import the demo upstream's document (idempotent), then run it as its own process."""
        from gateway.models import Upstream

        imported = io.StringIO()
        call_command(
            "import_openapi",
            str(DEMO_OPENAPI),
            "--upstream",
            f"http://127.0.0.1:{port}",
            "--name",
            DEMO_UPSTREAM_NAME,
            stdout=imported,
            no_color=True,
        )
        if say:
            self.stdout.write(imported.getvalue().rstrip("\n"))
        secret = Upstream.objects.get(name=DEMO_UPSTREAM_NAME).signing_secret
        return DemoUpstreamProcess(port=port, secret=secret).start()

    def _banner(self, *, demo_logins: bool, emulator, upstream=None) -> list[str]:
        """What is printed once the port is bound, the URL last (``{url}`` is filled in then)."""
        from portal.management.commands.seed_demo import DEMO_ADMIN, DEMO_DEVELOPER

        lines = [""]
        if demo_logins:
            lines += [
                self.style.SUCCESS("Demo logins:"),
                f"  developer  {DEMO_DEVELOPER[0]} / {DEMO_DEVELOPER[1]}",
                f"  operator   {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}",
            ]
        lines += [
            "  Operators sign in to /admin/ with a second factor: the first visit asks to set up "
            "an authenticator app (TOTP) and shows recovery codes.",
            f"  Emails are written to {settings.EMAIL_FILE_PATH}/",
        ]
        if emulator is not None:
            lines.append(f"  Stripe emulator: {emulator.url}/ (no real Stripe account needed)")
        if upstream is not None:
            lines.append(
                f"  Demo upstream: {upstream.url}/, sold through the gateway at /v1/echo/{{word}}, "
                "/v1/words, /v1/ticks (docs/gateway.md)"
            )
        lines += [
            "  Press Ctrl+C to stop.",
            "",
            self.style.SUCCESS("Meterdesk is running at {url}"),
        ]
        return lines

    def _drain_usage(self) -> None:
        from metering.services import ROLLUP_GRACE_SECONDS, usage_rollup

        # A moment past every minute's grace: no request is served any more, so every minute,
        # the current one included, is closed.
        past_everything = timezone.now() + timedelta(seconds=ROLLUP_GRACE_SECONDS + 120)
        result = usage_rollup(now=past_everything)
        self.stdout.write(f"Stopped; rolled up {result.units} units of usage held in memory.")

    def _start_emulator(self):
        from devtools.stripe_emulator import Emulator

        # Its state lives in a file, so a restart keeps every customer the portal links to.
        emulator = Emulator(
            port=settings.STRIPE_EMULATOR_PORT,
            state_file=settings.STRIPE_EMULATOR_STATE_FILE or None,
        )
        try:
            emulator.start()
        except OSError as exc:
            raise CommandError(
                f"The Stripe emulator cannot listen on port {settings.STRIPE_EMULATOR_PORT} "
                f"({exc}); set STRIPE_EMULATOR_PORT to a free port."
            ) from exc
        return emulator

    def _start_beat(self) -> None:
        embedded_beat().start()
        logger.debug("Celery beat runs in-process; jobs run eagerly in this process")


class EmbeddedServer(uvicorn.Server):
    """uvicorn, announcing itself with serve's banner (the URL last) once the socket is bound,
    instead of its own lines. A port already taken ends in uvicorn's error and no URL."""

    def __init__(self, config: uvicorn.Config, *, banner: list[str], stdout):
        super().__init__(config)
        self.banner = banner
        self.stdout = stdout

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.servers:
            self.announce(self.servers[0].sockets[0].getsockname()[1])

    def announce(self, bound_port: int) -> None:
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        url = f"http://{host}:{bound_port}/"
        for line in self.banner:
            self.stdout.write(line.replace("{url}", url))


class DemoUpstreamProcess:
    """The demo's upstream (gateway/demo_upstream.py) as a process of its own, as an operator's
    API would be: uvicorn on the loopback, told the signing secret it verifies calls with."""

    def __init__(self, *, port: int, secret: str):
        self.port = port
        self.secret = secret
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: float = 10.0) -> "DemoUpstreamProcess":
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "gateway.demo_upstream:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        env = {**os.environ, "DEMO_UPSTREAM_SECRET": self.secret}
        self.process = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR)  # noqa: S603
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise CommandError(
            f"The demo upstream could not listen on port {self.port}; set --upstream-port "
            "to a free port."
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def database_is_fresh(using: BaseDatabaseWrapper = connection) -> bool:
    """True before the first migration: the table Django records migrations in is missing."""
    return not MigrationRecorder(using).has_table()


def quiet_routine_logs() -> None:
    """Routine lines below WARNING, unless the root logger is at DEBUG (LOG_LEVEL=DEBUG)."""
    # WhiteNoise warns that STATIC_ROOT does not exist (whitenoise/base.py add_files, a
    # UserWarning raised on behalf of its caller, Django's handler); the embedded mode serves
    # static files from the apps' folders (WHITENOISE_USE_FINDERS) and never collects them.
    warnings.filterwarnings(
        "ignore",
        message=re.escape(f"No directory at: {settings.STATIC_ROOT}"),
        category=UserWarning,
    )
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def embedded_beat():
    """Celery beat as a thread of this process, every scheduled job runnable here.

    Beat finds a job's task by name in the app's registry and, with tasks eager, runs it on the
    spot; a name missing there is only published to the in-memory broker, where no worker ever
    takes it. A worker imports the task modules when it starts; this process does it here.
    """
    from celery.beat import EmbeddedService

    celery_app.loader.import_default_modules()
    missing = sorted(
        entry["task"]
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] not in celery_app.tasks
    )
    if missing:
        raise CommandError(f"Scheduled jobs with no task behind them: {', '.join(missing)}")
    return EmbeddedService(
        celery_app, thread=True, schedule_filename=settings.CELERY_BEAT_SCHEDULE_FILENAME
    )


def _interrupt(signum, frame) -> None:
    """SIGTERM stops the server the way Ctrl+C does, so the usage drain runs."""
    raise KeyboardInterrupt
