"""The API's page works offline: Swagger UI comes from heygemd web itself, and the page asks no other host for anything.

A real `heygemd run` and `heygemd web` in Debian's Chromium; every request the page makes is recorded.
"""

from __future__ import annotations

import pytest
from browsing import screenshot, wait_js
from webserver import serving

pytestmark = pytest.mark.slow
PATHS = "#swagger-ui .opblock-summary-path"


def test_the_api_page_loads_nothing_from_another_host_and_shows_every_route(daemon_factory, page):
    requested: list[str] = []
    failed: list[str] = []  # but the dashboard's live stream, cut when the page is left
    complaints: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfailed", lambda request: failed.append(request.url) if "/events/" not in request.url else None)
    page.on("console", lambda message: complaints.append(message.text) if message.type == "error" else None)
    with serving(daemon_factory) as (_, web):
        page.goto(f"{web.url}/")
        page.click("header.top nav a[href='/docs']")
        spec = page.request.get(f"{web.url}/openapi.json").json()
        wait_js(page, f"document.querySelectorAll('{PATHS}').length >= {len(spec['paths'])}")
        shown = page.eval_on_selector_all(PATHS, "items => items.map(item => item.textContent.trim())")
        assert set(shown) == set(spec["paths"]), "the page shows every route of the description"
        page.locator(PATHS, has_text="/api/status").click()
        page.click("#swagger-ui .opblock.is-open button.try-out__btn")
        page.click("#swagger-ui .opblock.is-open button.execute")
        page.wait_for_selector("#swagger-ui .opblock.is-open .live-responses-table .response-col_status:text-is('200')")
        screenshot(page, "api-docs.png")
    foreign = [url for url in requested if not url.startswith((web.url, "data:", "blob:"))]
    assert not foreign, f"the API page asked other hosts: {foreign}"
    assert any("/docs/assets/swagger-ui-bundle.js" in url for url in requested)
    assert not failed and not complaints, f"failed requests {failed}, console errors {complaints}"
