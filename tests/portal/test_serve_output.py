"""What `make run` prints: the logins, then the URL, last; no routine job lines (issue 16).

It printed ~300 log lines in 20 idle minutes (beat sending each job, each task succeeding),
"the first run takes about a minute" on every start, and Django's server banner after the
portal's URL.
"""

import io
import logging
import warnings

import pytest
import uvicorn
from django.core.management import call_command
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import ConnectionHandler

from portal.management.commands import serve
from portal.management.commands.seed_demo import DEMO_ADMIN, DEMO_DEVELOPER

FIRST_RUN = "Creating the database (the first run takes about a minute)..."
URL_LINE = "Meterdesk is running at http://127.0.0.1:8123/"


@pytest.fixture
def start(monkeypatch, settings, tmp_path):
    """``manage.py serve`` up to the moment the port is bound; returns the lines printed."""
    settings.VAR_DIR = tmp_path
    # serve is the embedded mode; CI's second pass sets REDIS_URL for the suite.
    settings.REDIS_URL = ""
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    settings.STRIPE_USE_EMULATOR = False

    def call_command_stand_in(name, *args, **options):
        if name == "seed_demo":
            assert options.get("no_logins") is True
            options["stdout"].write("free: up to date\npro: up to date\n")

    def serve_stand_in(self, host, port, banner):
        # uvicorn's server, up to its bind callback.
        config = uvicorn.Config(app="config.asgi:application", host=host, port=port)
        serve.EmbeddedServer(config, banner=banner, stdout=self.stdout).announce(port)

    class DemoUpstreamStandIn:
        url = "http://127.0.0.1:8001"

        def stop(self):
            pass

    monkeypatch.setattr(serve, "call_command", call_command_stand_in)
    monkeypatch.setattr(serve.Command, "_serve", serve_stand_in)
    monkeypatch.setattr(
        serve.Command, "_start_demo_upstream", lambda self, port, say: DemoUpstreamStandIn()
    )
    monkeypatch.setattr(serve, "quiet_routine_logs", lambda: None)
    monkeypatch.setattr(serve.signal, "signal", lambda *args: None)
    monkeypatch.setattr(serve.Command, "_drain_usage", lambda self: None)

    def run(*, fresh: bool, verbosity: int = 1) -> list[str]:
        monkeypatch.setattr(serve, "database_is_fresh", lambda: fresh)
        out = io.StringIO()
        serve.Command(stdout=out, no_color=True).handle(
            host="127.0.0.1", port=8123, no_jobs=True, no_seed=False, verbosity=verbosity
        )
        return [line for line in out.getvalue().splitlines() if line.strip()]

    return run


def test_a_restart_prints_the_logins_then_the_url_last(start):
    lines = start(fresh=False)

    assert lines[-1] == URL_LINE
    assert FIRST_RUN not in lines
    # Seeding only found everything up to date: nothing to say.
    assert "free: up to date" not in lines
    logins = lines.index("Demo logins:")
    assert logins < lines.index(URL_LINE)
    assert f"  developer  {DEMO_DEVELOPER[0]} / {DEMO_DEVELOPER[1]}" in lines
    assert any(line.startswith(f"  operator   {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}") for line in lines)
    # The server's own banner (its URL again) is not printed.
    assert not any("Uvicorn running" in line for line in lines)
    assert any("Demo upstream: http://127.0.0.1:8001/" in line for line in lines)
    assert len(lines) <= 10


def test_the_first_run_says_it_takes_a_minute_and_what_seeding_made(start):
    lines = start(fresh=True)

    assert lines[0] == FIRST_RUN
    assert "free: up to date" in lines
    assert lines[-1] == URL_LINE


def test_verbosity_2_shows_the_seeding_on_every_start(start):
    assert "free: up to date" in start(fresh=False, verbosity=2)


def test_a_database_is_fresh_until_migrated(tmp_path, django_db_blocker):
    # A database of its own, not the test database: pytest-django guards connections.
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "new.db")}}
    )
    database = handler["default"]
    with django_db_blocker.unblock():
        assert serve.database_is_fresh(database) is True
        # What migrate does first: the table it records each migration in.
        MigrationRecorder(database).ensure_schema()
        assert serve.database_is_fresh(database) is False
        handler.close_all()


@pytest.mark.parametrize(("root_level", "quieted"), [(logging.INFO, True), (logging.DEBUG, False)])
def test_routine_job_lines_are_quiet_unless_log_level_is_debug(root_level, quieted):
    loggers = [logging.getLogger(name) for name in serve.ROUTINE_LOGGERS]
    saved = (logging.getLogger().level, [logger.level for logger in loggers])
    logging.getLogger().setLevel(root_level)
    for logger in loggers:
        logger.setLevel(logging.NOTSET)
    try:
        serve.quiet_routine_logs()

        beat = logging.getLogger("celery.beat")
        assert beat.isEnabledFor(logging.INFO) is not quieted
        # Failures still show.
        assert logging.getLogger("celery.app.trace").isEnabledFor(logging.ERROR)
    finally:
        logging.getLogger().setLevel(saved[0])
        for logger, level in zip(loggers, saved[1], strict=True):
            logger.setLevel(level)


@pytest.mark.django_db
def test_seed_demo_leaves_the_logins_to_serve_when_asked():
    out = io.StringIO()

    call_command("seed_demo", "--no-stripe", "--no-logins", stdout=out)

    assert "Demo logins" not in out.getvalue()


def test_whitenoise_is_not_heard_about_the_static_root_the_embedded_mode_never_fills(settings):
    with warnings.catch_warnings(record=True) as heard:
        warnings.simplefilter("always")
        root_level = logging.getLogger().level
        logging.getLogger().setLevel(logging.DEBUG)  # the warning filter only, not the loggers
        try:
            serve.quiet_routine_logs()
        finally:
            logging.getLogger().setLevel(root_level)
        warnings.warn(f"No directory at: {settings.STATIC_ROOT}/", UserWarning, stacklevel=1)
        warnings.warn("Something else", UserWarning, stacklevel=1)

    assert [str(warning.message) for warning in heard] == ["Something else"]
