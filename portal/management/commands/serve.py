"""``make run``: the whole product in one process, on the embedded defaults.

Migrates, starts the bundled Stripe emulator when no Stripe key is set, seeds the demo, starts
Celery beat in a thread (tasks run eagerly in this process, so the in-process limiter's counters
are rolled up by the same process that holds them), then serves HTTP.

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
import warnings
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.management.commands import runserver
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


class Command(BaseCommand):
    help = "Run the portal with its jobs (and the Stripe emulator when no Stripe key is set)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1)."
        )
        parser.add_argument("--port", type=int, default=8000, help="Port to bind (default 8000).")
        parser.add_argument("--no-jobs", action="store_true", help="Do not run the beat jobs.")
        parser.add_argument("--no-seed", action="store_true", help="Do not seed the demo data.")

    def handle(self, *args, host: str, port: int, no_jobs: bool, no_seed: bool, **options):
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
        if not no_jobs:
            self._start_beat()
        banner = self._banner(demo_logins=not no_seed, emulator=emulator)
        # The embedded mode is for one machine; production serves config.wsgi with gunicorn.
        os.environ.setdefault("DJANGO_RUNSERVER_HIDE_WARNING", "true")
        # A stop (Ctrl+C or SIGTERM) first rolls up every counter this process holds: the
        # in-process limiter keeps usage in memory, and usage is never to be lost.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            call_command(
                EmbeddedRunserver(banner=banner, stdout=self.stdout, stderr=self.stderr),
                f"{host}:{port}",
                use_reloader=False,
                use_threading=True,
            )
        finally:
            self._drain_usage()

    def _banner(self, *, demo_logins: bool, emulator) -> list[str]:
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


class EmbeddedRunserver(runserver.Command):
    """Django's development server, announcing itself with serve's banner instead of its own
    four lines, so the portal's URL is the last line printed. ``on_bind`` is where Django's
    runserver prints its banner once the socket is bound (django/core/management/commands/
    runserver.py), so a port already taken still ends in its "Error: That port is already in
    use." and no URL."""

    # Set by runserver's handle() from the address given, before it binds.
    addr: str
    _raw_ipv6: bool

    def __init__(self, *, banner: list[str], **kwargs):
        super().__init__(**kwargs)
        self.banner = banner

    def on_bind(self, server_port: int) -> None:
        # As runserver's own on_bind spells the address ("0" stands for every IPv4 one).
        host = "0.0.0.0" if self.addr == "0" else self.addr  # noqa: S104 - shown, not bound
        if self._raw_ipv6:
            host = f"[{host}]"
        url = f"{self.protocol}://{host}:{server_port}/"
        for line in self.banner:
            self.stdout.write(line.replace("{url}", url))


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
