"""A fresh Python process that imports the settings from scratch, for tests of what the
settings module decides at import (the secret key, logging, error reporting): in the test
process the settings were read once, before any test could set the environment."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_with_settings(
    code: str, var_dir: Path, *, drop: Callable[[str], bool], **env: str
) -> subprocess.CompletedProcess:
    """Run ``code`` under ``python -c`` with this environment, less the variables ``drop``
    names (so the machine's own settings cannot decide the outcome), plus ``env``; the install's
    files go to ``var_dir``."""
    clean = {key: value for key, value in os.environ.items() if not drop(key)}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(var_dir), **env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
