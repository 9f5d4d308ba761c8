"""The API docs show keys as this install issues them (issue 16: the docs said mdk_live_ while
every key `make run` issues starts mdk_test_)."""

import json
from pathlib import Path

import pytest

from portal.keys.format import new_prefix

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def key_schemes(client) -> dict:
    document = client.get("/api/schema/?format=json").json()
    return document["components"]["securitySchemes"]


@pytest.mark.parametrize(("live", "start"), [(False, "mdk_test_"), (True, "mdk_live_")])
def test_the_documented_key_starts_as_the_issued_keys_do(client, settings, live, start):
    settings.STRIPE_LIVE_MODE = live
    other = "mdk_live_" if start == "mdk_test_" else "mdk_test_"

    schemes = key_schemes(client)

    assert new_prefix().startswith(start)
    assert schemes["ApiKeyBearer"]["bearerFormat"].startswith(start)
    text = json.dumps(schemes)
    assert f"e.g. {start}ab12cd34_" in text
    assert other not in text


def test_the_readme_examples_use_the_test_keys_make_run_issues():
    readme = (ROOT / "README.md").read_text()

    assert "mdk_test_" in readme
    assert "mdk_live_" not in readme
