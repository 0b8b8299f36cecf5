"""The documentation site builds strictly and reads offline: no page loads a font, style, script or picture from
another host (an operator's machine beside the GPU often has no internet)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docs_pages import DOCS, REPO

# src= and href= of the elements a browser loads by itself (not <a> links, which a reader may follow or not).
_LOADED = re.compile(r"<(?:script|img|link|source|iframe)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
_ELSEWHERE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.slow
def test_every_page_is_built(site):
    pages = {path.with_suffix(".html").name for path in DOCS.glob("*.md")}
    assert pages <= {path.name for path in site.glob("*.html")}
    screenshots = {path.name for path in (DOCS / "img").glob("*.png")}
    assert "dashboard-rendering.png" in screenshots and screenshots <= {path.name for path in (site / "img").glob("*.png")}


@pytest.mark.slow
def test_no_page_loads_anything_from_another_host(site):
    loaded_elsewhere = {
        f"{page.name}: {address}"
        for page in site.rglob("*.html")
        for address in _LOADED.findall(page.read_text(encoding="utf-8"))
        if _ELSEWHERE.match(address)
    }
    assert not loaded_elsewhere
