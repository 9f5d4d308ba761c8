"""Playwright fixtures driving Debian's chromium (never a downloaded browser)."""

import os
from pathlib import Path

import pytest

from tests.services import CHROMIUM_ARGS, chromium_path

ARTIFACTS = Path(
    os.environ.get("MDK_ARTIFACTS", Path(__file__).resolve().parent.parent / "artifacts")
)


@pytest.fixture(scope="session")
def _playwright_browser():
    executable = chromium_path()
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between page actions are still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(_playwright_browser):
    context = _playwright_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under artifacts/screenshots/ (CI keeps the folder)."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
