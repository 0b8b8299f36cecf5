"""The studio in a real browser: presenters uploaded once on the Presenters page, then a typed script, previewed and
sent with two presenters picked, gives two videos. Debian's Chromium, a real `heygemd web` beside a real `heygemd run`.
"""

from __future__ import annotations

import httpx
import pytest
from browsing import screenshot, wait_js
from media_factory import make_still
from webserver import serving

pytestmark = pytest.mark.slow

SCRIPT = "Hello, and welcome. This video was made from a typed script. Thank you for watching."


def add_presenter(page, url: str, name: str, template: str) -> None:
    page.goto(f"{url}/presenters")
    page.fill("#presenter-form input[name=name]", name)
    page.set_input_files("#presenter-form input[name=templates]", template)
    page.click("#presenter-submit")
    page.wait_for_url(f"{url}/presenters")
    page.wait_for_selector(f'li.presenter[data-name="{name}"] img')


def test_presenters_uploaded_once_then_a_previewed_script_with_two_of_them_gives_two_videos(
    daemon_factory, page, media, tmp_path
):
    still = make_still(tmp_path / "portrait.png")
    with serving(daemon_factory) as (daemon, web):
        add_presenter(page, web.url, "anna", str(media["video"]))
        add_presenter(page, web.url, "ben", str(still))
        wait_js(
            page, "Array.from(document.querySelectorAll('li.presenter img')).every(i => i.complete && i.naturalWidth > 0)"
        )
        screenshot(page, "studio-presenters.png")

        page.goto(f"{web.url}/upload")
        page.check('input[name=presenters][value="anna"]')
        page.check('input[name=presenters][value="ben"]')
        page.fill("#script", SCRIPT)
        wait_js(page, "!document.querySelector('#voice option[value=kokoro]')")  # no Kokoro files: not offered
        page.select_option("#voice", "espeak-ng")
        page.fill("#language", "en")
        page.click("#preview")
        wait_js(page, "!document.getElementById('preview-player').hidden")
        wait_js(page, "document.getElementById('preview-player').duration > 0.5")
        screenshot(page, "studio-script.png")

        page.click("#submit")
        page.wait_for_url(f"{web.url}/jobs/script")
        page.wait_for_selector("#live .heading[data-phase=done][data-status=ok]")
        job = httpx.get(f"{web.url}/api/jobs/script", timeout=30).json()
    assert [(video["template"], video["status"]) for video in job["videos"]] == [
        ("anna/presenter.mp4", "ok"),
        ("ben/portrait.png", "ok"),
    ]
    outputs = sorted(path.name for path in (daemon.outbox / "script").glob("*.mp4"))
    assert len(outputs) == 2, outputs
    assert sorted(path.name for path in (daemon.root / "presenters").iterdir()) == ["anna", "ben"]  # never moved
