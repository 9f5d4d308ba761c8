"""SECRET_KEY when none is given: each install makes its own random key once, keeps it in
VAR_DIR/secret_key (readable by its owner only), and reuses it, so sessions survive a restart;
no key is in the source for anyone to forge email-confirmation links with. Production still
refuses to start without SECRET_KEY.

Settings are read in a fresh interpreter, as ``make run`` and the workers read them."""

import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.secret_key import secret_key_read_or_create
from tests.fresh_process import run_with_settings

PRINT_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"
# The key every install used to share.
OLD_SHARED_KEY = "dev-insecure-meterdesk-key-never-use-in-production-0123456789abcdef"


def _settings_key(var_dir: Path, **env: str) -> subprocess.CompletedProcess:
    return run_with_settings(
        PRINT_KEY, var_dir, drop=lambda key: key in ("SECRET_KEY", "PRODUCTION", "DEBUG"), **env
    )


def test_an_install_makes_its_own_key_once_and_keeps_it(tmp_path):
    first = _settings_key(tmp_path)
    second = _settings_key(tmp_path)

    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert second.stdout.strip() == key  # a restart keeps sessions
    assert len(key) >= 50 and key != OLD_SHARED_KEY
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]


def test_two_installs_have_different_keys(tmp_path):
    one = _settings_key(tmp_path / "one").stdout.strip()
    other = _settings_key(tmp_path / "other").stdout.strip()

    assert one and other and one != other


def test_a_given_secret_key_is_used_and_no_file_is_made(tmp_path):
    given = "k" * 60

    result = _settings_key(tmp_path, SECRET_KEY=given)

    assert result.stdout.strip() == given
    assert not (tmp_path / "secret_key").exists()


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    result = _settings_key(tmp_path, PRODUCTION="true", ALLOWED_HOSTS="portal.example.com")

    assert result.returncode != 0
    assert "SECRET_KEY must be set when PRODUCTION=true" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_processes_starting_at_once_agree_on_one_key(tmp_path):
    path = tmp_path / "secret_key"

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: secret_key_read_or_create(path), range(16)))

    assert len(keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary file left


def test_an_empty_key_file_is_an_error_not_a_weak_key(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("\n")

    with pytest.raises(ImproperlyConfigured, match="holds no usable SECRET_KEY"):
        secret_key_read_or_create(path)
