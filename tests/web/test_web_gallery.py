"""The results gallery in a browser: thumbnails that play on click, search by name, delete with a confirmation.

A real `heygemd run` renders real jobs (sent through the API); the page is Debian's Chromium.
"""

from __future__ import annotations

import time

import httpx
import pytest
from browsing import TIMEOUT_MS, screenshot, wait_js
from webserver import serving

pytestmark = pytest.mark.slow

JOBS = ("gallery one", "gallery two")


def send_jobs(url: str, media) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        for name in JOBS:
            files = [
                ("audio", ("speech.wav", media["audio"].read_bytes(), "audio/wav")),
                ("templates", ("front.mp4", media["video"].read_bytes(), "video/mp4")),
                ("templates", ("side.mp4", media["video"].read_bytes(), "video/mp4")),
            ]
            assert client.post("/api/jobs", files=files, data={"name": name}).status_code == 201
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while any(client.get(f"/api/jobs/{name}").json()["phase"] != "done" for name in JOBS):
            assert time.monotonic() < deadline, "the jobs never finished"
            time.sleep(0.2)


def tiles(page) -> list[str]:
    return [item.get_attribute("data-job") for item in page.query_selector_all(".results-gallery li")]


def test_the_gallery_plays_searches_and_deletes(daemon_factory, page, media):
    questions: list[str] = []
    page.on("dialog", lambda dialog: questions.append(dialog.message))
    with serving(daemon_factory) as (daemon, web):
        send_jobs(web.url, media)
        page.goto(f"{web.url}/")
        page.click("a.more")  # "All results"
        page.wait_for_url(f"{web.url}/results")
        assert tiles(page) == ["gallery two", "gallery one"]
        tile = '.results-gallery li[data-job="gallery one"]'
        assert page.query_selector(f"{tile} video") is None and page.is_visible(f"{tile} a.play img")  # a thumbnail
        page.click(f"{tile} a.play")
        wait_js(
            page,
            f"(() => {{ const v = document.querySelector('{tile} video'); return !v.paused && v.currentTime > 0.1; }})()",
        )
        assert "2 videos" in page.inner_text(tile)
        screenshot(page, "gallery.png")

        page.fill("input[name=q]", "TWO")
        page.press("input[name=q]", "Enter")
        page.wait_for_selector("#found")
        assert tiles(page) == ["gallery two"]

        page.click('.results-gallery li[data-job="gallery two"] button.delete')
        page.wait_for_url(f"{web.url}/results?q=TWO")  # the page shows again, without it
        page.wait_for_selector('text=No result\'s name holds "TWO".')
        assert questions and questions[0].startswith("Delete this job's results for good?")
        assert not (daemon.outbox / "gallery two").exists() and (daemon.outbox / "gallery one").is_dir()
        page.goto(f"{web.url}/jobs/gallery%20one")
        page.wait_for_selector("#live .heading[data-phase=done]")
        assert page.eval_on_selector_all(".job-videos.grid video.result", "videos => videos.length") == 2  # side by side
        screenshot(page, "job-two-videos.png")
