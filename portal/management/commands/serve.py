"""``make run``: the whole product in one process, on the embedded defaults.

Migrates, starts the bundled Stripe emulator when no Stripe key is set, seeds the demo, starts
Celery beat in a thread (tasks run eagerly in this process, so the in-process limiter's counters
are rolled up by the same process that holds them), then serves HTTP.
"""

import logging
import os
import signal
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config import celery_app
from portal.checks import exposure_warning, hosts_exposed

logger = logging.getLogger(__name__)


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
        self.stdout.write("Applying migrations (the first run takes about a minute)...")
        call_command("migrate", interactive=False, verbosity=0)
        emulator = self._start_emulator() if settings.STRIPE_USE_EMULATOR else None
        if not no_seed:
            call_command("seed_demo", stdout=self.stdout)
        if not no_jobs:
            self._start_beat()
        self.stdout.write(self.style.SUCCESS(f"\nMeterdesk is running at http://{host}:{port}/"))
        self.stdout.write(
            "  Operators sign in to /admin/ with a second factor: the first visit asks to set up "
            "an authenticator app (TOTP) and shows recovery codes."
        )
        self.stdout.write(f"  Emails are written to {settings.EMAIL_FILE_PATH}/")
        if emulator is not None:
            self.stdout.write(f"  Stripe emulator: {emulator.url}/ (no real Stripe account needed)")
        self.stdout.write("  Press Ctrl+C to stop.\n")
        # The embedded mode is for one machine; production serves config.wsgi with gunicorn.
        os.environ.setdefault("DJANGO_RUNSERVER_HIDE_WARNING", "true")
        # A stop (Ctrl+C or SIGTERM) first rolls up every counter this process holds: the
        # in-process limiter keeps usage in memory, and usage is never to be lost.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            call_command("runserver", f"{host}:{port}", use_reloader=False, use_threading=True)
        finally:
            self._drain_usage()

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
        logger.info("Celery beat runs in-process; jobs run eagerly in this process")


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
