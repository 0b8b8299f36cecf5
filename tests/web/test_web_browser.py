"""The web page in a real browser: Debian's Chromium driven by Playwright, a real `heygemd web` and `heygemd run`.

Needs the Debian package chromium (and the pip package playwright, in the test extra); Playwright's
own browser download is never used. Without them these tests skip, naming the package; under
CI=true they fail instead. Screenshots of the dashboard and a job page are kept in tests/artifacts/.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from browsing import DESKTOP, PHONE, TIMEOUT_MS, screenshot, wait_js
from service_harness import Daemon
from webserver import LONG_AUDIO_SECONDS, SLOW_RENDER, WebProcess, make_long_job, serving

from heygemd.control import read_control

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_job(tmp_path_factory) -> tuple[Path, Path]:
    return make_long_job(tmp_path_factory.mktemp("web-media"))


@pytest.fixture
def site(daemon_factory) -> Iterator[tuple[Daemon, WebProcess]]:
    with serving(daemon_factory) as running:
        yield running


def upload(page, web: WebProcess, name: str, audio: Path, template: Path, job_toml: str | None = None) -> None:
    page.goto(f"{web.url}/upload")
    page.fill("input[name=name]", name)
    page.set_input_files("input[name=audio]", str(audio))
    page.set_input_files("input[name=templates]", str(template))
    if job_toml is not None:
        page.click("details summary")
        page.fill("textarea[name=job_toml]", job_toml)
    page.click("#submit")
    page.wait_for_url(f"{web.url}/jobs/{quote(name)}")


def phase(page) -> str:
    return page.get_attribute("#live .heading", "data-phase") or ""


def see_before_and_after(page, width: int, side_by_side: bool) -> None:
    """The done job's template and its result both load (the template from the archive), beside each other on a
    wide window and one above the other on a phone, and the page does not scroll sideways."""
    wait_js(page, "document.querySelector('.before-after video.template').readyState >= 1")
    wait_js(page, "document.querySelector('.before-after video.result').readyState >= 1")
    boxes = page.evaluate(
        """() => ['figure.before', 'figure.after'].map(selector => {
            const box = document.querySelector(selector).getBoundingClientRect();
            return {left: box.left, top: box.top, bottom: box.bottom};
        })"""
    )
    before, after = boxes
    if side_by_side:
        assert after["left"] > before["left"] and after["top"] == before["top"], boxes
    else:
        assert after["top"] >= before["bottom"], boxes
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the job page scrolls sideways at {width} px: {scroll}"
    template = page.get_attribute(".before-after video.template", "src")
    assert template == "/api/jobs/browser%20job/templates/presenter.mp4"


def test_upload_watch_the_progress_play_the_result_and_download_the_zip(site, page, browser, media, long_job):
    daemon, web = site
    upload(page, web, "first look", media["audio"], media["video"])  # a result for the dashboard to show meanwhile
    upload(page, web, "browser job", *long_job, job_toml=SLOW_RENDER)

    dashboard = browser.new_page(viewport={"width": 1200, "height": 900})
    dashboard.set_default_timeout(TIMEOUT_MS)
    dashboard.goto(web.url)
    seen: list[float] = []
    dashboard_shot = None
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while phase(page) != "done" and time.monotonic() < deadline:  # the job page follows the job by itself
        bar = page.query_selector(".progress progress")
        if bar is not None:
            value = float(bar.get_attribute("value") or 0)
            if not seen or seen[-1] != value:
                seen.append(value)
        shown = dashboard.query_selector(".service .progress progress")
        if (
            dashboard_shot is None
            and shown is not None
            and 10 <= float(shown.get_attribute("value") or 0) <= 90
            and dashboard.query_selector(".results img") is not None
        ):
            dashboard_shot = screenshot(dashboard, "dashboard-rendering.png")
        page.wait_for_timeout(100)
    assert phase(page) == "done", f"the page never showed the job done (progress seen: {seen})"
    moving = [value for value in seen if 0 < value < 100]
    assert len(set(seen)) >= 2 and moving, f"the progress bar did not move: {seen}"
    assert dashboard_shot is not None, "the dashboard never showed the render's progress beside a result"

    # the result appeared without a reload: thumbnail-or-player, downloads, and it plays and seeks
    video = page.wait_for_selector("video.result")
    assert page.get_attribute("#live .heading", "data-status") == "ok"
    page.evaluate("document.querySelector('video.result').muted = true")
    page.evaluate("document.querySelector('video.result').play()")
    wait_js(
        page,
        "(() => { const v = document.querySelector('video.result');"
        " return v.duration > 0 && v.currentTime > 0.2 && !v.paused; })()",
    )
    duration = page.evaluate("document.querySelector('video.result').duration")
    assert abs(duration - LONG_AUDIO_SECONDS) < 1.0
    page.evaluate(f"document.querySelector('video.result').currentTime = {duration / 2}")  # seeking needs range requests
    wait_js(
        page,
        f"document.querySelector('video.result').currentTime >= {duration / 2 - 0.5}"
        " && document.querySelector('video.result').readyState >= 2",
    )
    assert video.is_visible()
    page.evaluate("document.querySelector('video.result').pause()")  # its controls stay shown (the screenshot)
    see_before_and_after(page, DESKTOP["width"], side_by_side=True)
    screenshot(page, "job-done.png")
    page.set_viewport_size(PHONE)
    see_before_and_after(page, PHONE["width"], side_by_side=False)
    page.set_viewport_size(DESKTOP)

    with page.expect_download() as download_info:
        page.click("#zip")
    archive = download_info.value
    assert archive.suggested_filename == "browser job.zip"
    with zipfile.ZipFile(archive.path()) as opened:
        names = set(opened.namelist())
        assert {"browser job/presenter.mp4", "browser job/presenter.json", "browser job/job.json"} <= names
        assert opened.read("browser job/presenter.mp4") == (daemon.outbox / "browser job" / "presenter.mp4").read_bytes()
        assert json.loads(opened.read("browser job/job.json"))["status"] == "ok"

    dashboard.wait_for_selector('.results li[data-job="browser job"]')  # the dashboard lists it without a reload
    screenshot(dashboard, "dashboard.png")
    dashboard.close()


def test_pause_resume_and_cancel_from_the_page(site, page, media, tmp_path):
    daemon, web = site
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    page.goto(f"{web.url}/upload")
    page.set_input_files("input[name=audio]", str(media["audio"]))
    page.set_input_files("input[name=templates]", str(notes))
    page.wait_for_selector("#refusals:has-text('\"notes.txt\" is not a video or an image.')")  # refused, said why
    assert page.is_disabled("#submit")  # before anything is sent
    assert [name for name in daemon.inbox.iterdir()] == []

    page.goto(web.url)
    page.click("#pause")
    page.wait_for_selector("#resume")
    assert read_control(daemon.state).paused
    page.wait_for_selector(".service .badge.state-paused")  # the service says so itself (status.json)

    upload(page, web, "waits", media["audio"], media["video"])
    page.wait_for_selector("text=The service is paused: this job starts when it is resumed.")  # ready, not taken

    upload(page, web, "cancel me", media["audio"], media["video"])
    page.click("#cancel")
    page.wait_for_selector(".badge.cancelling, #live .heading[data-phase=done]")
    page.wait_for_selector("#live .heading[data-phase=done]")  # the page follows the job to its end
    assert page.text_content("#phase").strip() == "cancelled"
    assert page.text_content(".problem.main .summary").strip() == "The job was cancelled. cancelled"
    error = json.loads((daemon.quarantine / "cancel me" / "error.json").read_text())
    assert error["code"] == "cancelled"
    assert (daemon.quarantine / "cancel me" / "presenter.mp4").read_bytes() == media["video"].read_bytes()
    page.goto(f"{page.url}?lang=zh-CN")
    page.wait_for_selector("text=任务已被取消。")
    screenshot(page, "job-cancelled-zh.png")
    assert (daemon.inbox / "waits").is_dir()  # paused all along: never claimed

    page.goto(f"{web.url}/?lang=en")
    page.click("#resume")
    page.wait_for_selector("#pause")
    assert not read_control(daemon.state).paused
    page.goto(f"{web.url}/jobs/waits")
    page.wait_for_selector("#live .heading[data-phase=done][data-status=ok]")
