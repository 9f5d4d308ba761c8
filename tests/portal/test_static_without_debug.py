"""``make run`` runs with DEBUG off, and its pages still have their CSS and scripts: outside
production WhiteNoise serves the files from where the apps keep them (WHITENOISE_USE_FINDERS;
https://whitenoise.readthedocs.io/en/stable/django.html#WHITENOISE_USE_FINDERS), with no
collectstatic step. Each page below is fetched as a browser would, then every stylesheet and
script it names."""

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


class _Assets(HTMLParser):
    """The stylesheets and scripts a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "link" and named.get("rel") == "stylesheet" and named.get("href"):
            self.urls.append(named["href"] or "")
        elif tag == "script" and named.get("src"):
            self.urls.append(named["src"] or "")


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def _loads_everything(client: Client, path: str, *, status: int = 200) -> list[str]:
    page = client.get(path, follow=True)
    assert page.status_code == status, (path, page.status_code)
    urls = [url for url in _assets(page.content.decode()) if url.startswith("/static/")]
    assert urls, f"{path} names no stylesheet or script under /static/"
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset["Content-Type"].split(";")[0] in ("text/css", "text/javascript"), url
        assert b"".join(asset.streaming_content)  # type: ignore[attr-defined]
    return urls


@pytest.fixture(autouse=True)
def _debug_off(settings):
    settings.DEBUG = False


@pytest.mark.django_db
def test_the_home_page_loads_its_css_and_script(client):
    urls = _loads_everything(client, "/")

    assert "/static/css/portal.css" in urls


@pytest.mark.django_db
def test_the_not_found_page_is_styled(client):
    _loads_everything(client, "/there-is-nothing-here/", status=404)


@pytest.mark.django_db
def test_the_admin_sign_in_is_styled(client):
    _loads_everything(client, "/admin/login/")
    # The admin's own stylesheet, from django.contrib.admin's static folder.
    assert client.get("/static/admin/css/base.css").status_code == 200


@pytest.mark.django_db
def test_the_api_docs_load_swagger_ui(client):
    urls = _loads_everything(client, "/api/docs/")

    assert any("drf_spectacular_sidecar/swagger-ui-dist" in url for url in urls)


def test_make_run_leaves_debug_off():
    """What `make run` runs (make -n prints it without running it)."""
    commands = subprocess.run(
        ["make", "-n", "--no-print-directory", "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout

    assert "manage.py serve" in commands
    assert "DEBUG=" not in commands
