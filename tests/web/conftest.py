"""The web tests' browser: Debian's Chromium driven by Playwright (its own browser download is never used).

Without chromium or playwright the browser tests skip, naming the package; under CI=true they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browsing import CHROMIUM, DESKTOP, PHONE, open_page
from smb_server import unavailable


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if CHROMIUM is None:
        unavailable("chromium is not installed: install the Debian package chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install playwright (in the test extra)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser) -> Iterator:
    opened = open_page(browser, DESKTOP)
    try:
        yield opened
    finally:
        opened.context.close()


@pytest.fixture
def phone(browser) -> Iterator:
    opened = open_page(browser, PHONE)
    try:
        yield opened
    finally:
        opened.context.close()
