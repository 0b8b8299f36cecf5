"""Helpers for the browser tests: Debian's Chromium through Playwright (pages, screenshots, waiting on the page)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium")
TIMEOUT_MS = 150_000
DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 360, "height": 740}


def open_page(browser, viewport: dict[str, int], locale: str = "en-US"):
    context = browser.new_context(locale=locale, accept_downloads=True, viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())
    return opened


def screenshot(page, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


def wait_js(page, expression: str) -> None:
    """Wait until ``expression`` is true in the page (evaluated over CDP: the page's CSP forbids eval, rightly)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never true: {expression}"
        page.wait_for_timeout(100)
