"""portal.W001: the embedded mode (PRODUCTION off) served beyond this machine. ``manage.py
check`` (and runserver, so ``make run``) warns when ALLOWED_HOSTS names another host, and
``manage.py serve`` when ``--host`` is not a loopback address; CI's own checks stay clean
(pass 2 sets no ALLOWED_HOSTS; the deploy check runs with PRODUCTION=true)."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import registry
from django.core.management import call_command

from portal.checks import embedded_mode_exposed, is_loopback

ROOT = Path(__file__).resolve().parents[2]
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - the address asked about, not one bound here


def _w001(settings_hosts: list[str], settings) -> list[str]:
    settings.ALLOWED_HOSTS = settings_hosts
    return [message.msg for message in embedded_mode_exposed() if message.id == "portal.W001"]


def test_the_check_is_registered():
    assert embedded_mode_exposed in registry.registry.get_checks()


def test_the_default_hosts_raise_no_warning(settings):
    settings.PRODUCTION = False

    assert _w001(["127.0.0.1", "localhost", "testserver"], settings) == []


@pytest.mark.parametrize("hosts", [["portal.example.com"], ["*"], ["localhost", "10.0.0.5"]])
def test_another_host_without_production_warns(settings, hosts):
    settings.PRODUCTION = False

    warnings = _w001(hosts, settings)

    assert len(warnings) == 1
    assert (
        "PRODUCTION is off, but ALLOWED_HOSTS lets other machines reach this site" in (warnings[0])
    )
    assert "localhost" not in warnings[0].rpartition(":")[2]


def test_production_is_not_warned_about(settings):
    settings.PRODUCTION = True

    assert _w001(["portal.example.com"], settings) == []


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", ".localhost", "api.localhost", "127.0.0.1", "127.0.0.2",
             "::1", "[::1]", "testserver"],
)  # fmt: skip
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", [EVERY_INTERFACE, "::", "*", "example.com", "10.0.0.5", "localhost.com"]
)
def test_hosts_beyond_this_machine(host):
    assert not is_loopback(host)


def _manage_check(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("ALLOWED_HOSTS", "PRODUCTION")}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ci_check_with_the_default_hosts_stays_clean():
    result = _manage_check("--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "portal.W001" not in result.stdout + result.stderr


def test_manage_py_check_warns_about_another_host():
    result = _manage_check("--fail-level", "WARNING", ALLOWED_HOSTS="portal.example.com")

    assert result.returncode != 0
    assert "portal.W001" in result.stderr
    assert "portal.example.com" in result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize(("host", "warned"), [(EVERY_INTERFACE, True), ("127.0.0.1", False)])
def test_serve_warns_when_bound_beyond_the_loopback(monkeypatch, settings, host, warned):
    """The command runs through, with nothing started: no migrate, no server, no emulator."""
    settings.PRODUCTION = False
    settings.REDIS_URL = ""
    settings.STRIPE_USE_EMULATOR = False
    ran: list[str] = []
    monkeypatch.setattr(
        "portal.management.commands.serve.call_command", lambda name, *a, **k: ran.append(name)
    )
    # The server (uvicorn) is started by Command._serve.
    monkeypatch.setattr(
        "portal.management.commands.serve.Command._serve",
        lambda self, host, port, banner: ran.append("server"),
    )
    monkeypatch.setattr("portal.management.commands.serve.signal.signal", lambda *a: None)
    # Logger levels are the process's: not this test's to change for the tests after it.
    monkeypatch.setattr("portal.management.commands.serve.quiet_routine_logs", lambda: None)
    stderr = io.StringIO()

    call_command(
        "serve", "--host", host, "--port", "8765", "--no-jobs", "--no-seed",
        stdout=io.StringIO(), stderr=stderr,
    )  # fmt: skip

    assert ran == ["migrate", "server"]
    assert ("PRODUCTION is off, but --host lets other machines reach" in stderr.getvalue()) is (
        warned
    )
