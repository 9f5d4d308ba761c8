"""The quickstart's Python and JavaScript samples, copied from the page as a developer would,
call the running API with the developer's key and wait out a rate limit as Retry-After says.

Run with the interpreters a developer has (python3, node 18+), against a live server."""

import shutil
import subprocess
import sys

import pytest

from tests.factories import ApiKeyFactory, TierFactory
from tests.portal.test_quickstart_page import samples

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slow_key(account):
    """A key on a tier that lets one unit through at a time, one a second: a second call right
    after the first is refused with 429 rate-limited and Retry-After: 1."""
    account.tier = TierFactory(slug="one-a-second", rate_limit_per_minute=60, burst=1)
    account.save(update_fields=["tier"])
    return ApiKeyFactory(account=account)


def sample(client, settings, live_server, name: str) -> str:
    settings.SITE_URL = live_server.url
    return samples(client.get("/quickstart/").content.decode())[name]


def run(command: list[str], key: str, script: str, suffix: str, tmp_path) -> str:
    path = tmp_path / f"quickstart{suffix}"
    path.write_text(script)
    done = subprocess.run(
        [*command, str(path)],
        env={"MDK_API_KEY": key, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_python_sample_calls_and_retries(
    owner_client, settings, live_server, slow_key, tmp_path
):
    script = sample(owner_client, settings, live_server, "python")
    assert f"{slow_key.prefix}_REST_OF_YOUR_KEY" in script
    # Three calls in a row: the second and third are refused at first and retried.
    script = script.replace(
        'print(call("/lookup?q=42"))', 'for q in (42, 43, 44):\n    print(call(f"/lookup?q={q}"))'
    )

    out = run([sys.executable], slow_key.plaintext, script, ".py", tmp_path)

    assert out.count("RateLimit: ") == 3
    assert "'number': 44" in out


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_the_javascript_sample_calls_and_retries(
    owner_client, settings, live_server, slow_key, tmp_path
):
    script = sample(owner_client, settings, live_server, "javascript")
    assert f"{slow_key.prefix}_REST_OF_YOUR_KEY" in script
    script = script.replace(
        'console.log(await call("/lookup?q=42"));',
        "for (const q of [42, 43, 44]) console.log(await call(`/lookup?q=${q}`));",
    )

    out = run(["node"], slow_key.plaintext, script, ".mjs", tmp_path)

    assert out.count("RateLimit: ") == 3
    assert "number: 44" in out


def test_a_refused_key_ends_with_the_problem_in_words(
    owner_client, settings, live_server, slow_key, tmp_path
):
    script = sample(owner_client, settings, live_server, "python")

    path = tmp_path / "quickstart.py"
    path.write_text(script)
    done = subprocess.run(
        [sys.executable, str(path)],
        env={"MDK_API_KEY": slow_key.prefix + "_" + "x" * 32, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert "401 A valid API key is required: The API key is not valid." in done.stderr
