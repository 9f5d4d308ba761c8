"""Fixtures every test module may use: the base users, the embedded defaults, the services."""

import gc
import os
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.conf import settings as django_settings
from django.core.cache import cache
from django.http import HttpRequest
from django.test import Client

from config import celery_app
from portal.keys.cache import key_cache
from portal.keys.last_used import last_used_buffer
from tests.factories import AccountFactory, UserFactory

pytest_plugins = [
    "tests.browser",
    "devtools.stripe_emulator.pytest_plugin",
    "tests.usage_reporting",
    "tests.limiter",
]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """The embedded pass's test database is a SQLite file, as in `make run`, not Django's
    in-memory shared cache: there, a second writer fails at once with "table is locked", while
    a file waits for the lock (WAL, immediate transactions, timeout) as the real one does, so
    tests of concurrent writers (two report runs at once) mean the same on both passes."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(
            Path(tempfile.gettempdir()) / f"meterdesk-test-{os.getpid()}.sqlite3"
        )


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, and at the end of the session, on PostgreSQL, whoever
    still holds a session on it named on stderr and disconnected: PostgreSQL refuses to drop
    a database another session uses, and the next run would start from a stale one."""
    yield
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        return
    with django_db_blocker.unblock():
        lingering_sessions_end()


def lingering_sessions_end() -> None:
    from django.db import connection

    own = {
        held.info.backend_pid
        for held in gc.get_objects()
        if isinstance(held, psycopg.Connection) and not held.closed
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, client_port, state, left(query, 160) "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for pid, application, port, state, query in cursor.fetchall():
            holder = "this pytest process" if pid in own else "another process"
            sys.stderr.write(
                f"\nA session on the test database outlived the tests ({holder}; pid {pid}, "
                f"application {application!r}, port {port}, {state}): {query}; disconnected\n"
            )
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    connection.close()


@pytest.fixture(autouse=True)
def _fresh_cache_and_eager_tasks(request, settings):
    """Each test starts with an empty cache and (unless it drives a real worker) eager tasks."""
    cache.clear()
    eager = request.node.get_closest_marker("celery_worker") is None
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    settings.CELERY_TASK_ALWAYS_EAGER = eager
    # Password hashing is deliberately slow; the tests check flows, not the hasher's cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # API keys: no key resolved by an earlier test, no flusher thread writing behind a test.
    settings.API_KEY_LAST_USED_FLUSH_SECONDS = 0
    key_cache.clear()
    last_used_buffer.drain()
    yield
    celery_app.conf.task_always_eager = previous
    cache.clear()


class _StillClock:
    """A ``time`` module whose ``time()`` does not move."""

    def __init__(self, now: float):
        self._now = now

    def time(self) -> float:
        return self._now


@pytest.fixture(autouse=True)
def _ratelimit_windows_hold_still(monkeypatch):
    """django-ratelimit counts in fixed windows that end on multiples of the period
    (django_ratelimit/core.py ``_get_window``), and the window is part of the counter's key: a
    test's requests straddling a boundary (likely on a loaded CI machine) would start a fresh
    count and pass the limit. Its clock is held still for each test, so a limit test means the
    same whenever it runs."""
    import time

    import django_ratelimit.core

    monkeypatch.setattr(django_ratelimit.core, "time", _StillClock(time.time()))


@pytest.fixture
def owner(db):
    """A developer with a verified email and an account on the default tier."""
    return AccountFactory().owner


@pytest.fixture
def account(owner):
    return owner.owned_accounts.get()


@pytest.fixture
def outsider(db):
    """Another developer, who must never see the owner's data."""
    return AccountFactory().owner


@pytest.fixture
def unverified_user(db):
    return UserFactory(verified=False)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "real_staff_login: operators sign in through the real login and MFA pages "
        "(force_login of staff no longer stands for a login that passed MFA)",
    )


@pytest.fixture(autouse=True)
def _staff_force_login_passes_mfa(request, monkeypatch):
    """``client.force_login(staff)``, and so pytest-django's ``admin_client``, stands for a full
    operator login that passed MFA, as the admin requires (portal/admin_site.py): the user gets
    an authenticator app (TOTP) if they have none, and the session gets allauth's "mfa"
    authentication record, the one a code given at login leaves. Non-staff logins are left as
    they are. Tests of the operators' sign-in itself are marked ``real_staff_login`` and go
    through the real login and MFA pages."""
    if request.node.get_closest_marker("real_staff_login"):
        return
    force_login = Client.force_login

    def force_login_passing_mfa(client, user, backend=None):
        force_login(client, user, backend)
        if user.is_staff:
            _session_passed_mfa(client, user)

    monkeypatch.setattr(Client, "force_login", force_login_passing_mfa)


def _session_passed_mfa(client, user):
    totp = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if totp is None:
        totp = TOTP.activate(user, generate_totp_secret()).instance
    request = HttpRequest()
    request.session = client.session
    record_authentication(request, user, "mfa", id=totp.pk, type=totp.type)
    request.session.save()
