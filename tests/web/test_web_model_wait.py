"""The page of a service that waits for its model files: it says which file goes where, an upload stays queued,
and it renders once the weights are put in place (a real `heygemd run` and a real `heygemd web`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from browsing import wait_js
from service_harness import Daemon, service_config
from webserver import WebProcess

from heygemd.daemon.status import WAITING_FOR_MODEL

pytestmark = pytest.mark.slow


@contextmanager
def waiting_for_weights(daemon_factory) -> Iterator[tuple[Daemon, WebProcess, Path]]:
    """A real service, and its page, whose configuration names a Wav2Lip checkpoint that is not there yet."""
    daemon = daemon_factory()
    checkpoint = daemon.root / "checkpoints" / "wav2lip_gan.pth"
    daemon.write_config(service_config(daemon.root, checkpoint=checkpoint))
    daemon.start()
    daemon.wait_ready()
    web = WebProcess(daemon.root, daemon.config_path).start()
    try:
        yield daemon, web, checkpoint
    finally:
        web.stop()
    assert daemon.stop() == 0


def place(weights: Path, checkpoint: Path) -> None:
    """Put the weights in place as a person should: copied beside, then renamed in at once."""
    checkpoint.parent.mkdir()
    shutil.copyfile(weights, checkpoint.with_name("incoming.tmp"))
    os.replace(checkpoint.with_name("incoming.tmp"), checkpoint)


def test_the_page_names_the_missing_file_and_the_upload_renders_once_it_is_placed(daemon_factory, media, wav2lip_checkpoint):
    with waiting_for_weights(daemon_factory) as (daemon, web, checkpoint):
        with httpx.Client(base_url=web.url, timeout=30) as client:
            [service] = client.get("/api/status").json()["services"]
            assert service["state"] == WAITING_FOR_MODEL
            [wanted] = service["model_files"]
            assert wanted["path"] == str(checkpoint.resolve())
            page = httpx.get(f"{web.url}/", timeout=30).text  # (a browser session: its cookie would ask for a form token)
            assert f"place wav2lip_gan.pth at {checkpoint.resolve()}" in page and "waiting for the model files" in page

            files = [
                ("audio", ("speech.wav", media["audio"].read_bytes(), "audio/wav")),
                ("templates", ("front.mp4", media["video"].read_bytes(), "video/mp4")),
            ]
            answer = client.post("/api/jobs", files=files, data={"name": "before the weights"})
            assert answer.status_code == 201, answer.text
            status_url = answer.json()["status_url"]
            daemon.wait_for(lambda: client.get(status_url).json()["phase"] == "queued", "the upload to be queued")

            place(wav2lip_checkpoint, checkpoint)
            done = daemon.wait_for(
                lambda: (job := client.get(status_url).json())["phase"] == "done" and job, "the job to be rendered"
            )
            assert done["status"] == "ok"
            [service] = client.get("/api/status").json()["services"]
            assert service["state"] != WAITING_FOR_MODEL and service["model_files"] == []


def test_the_dashboard_turns_from_waiting_to_ready_when_the_weights_appear(daemon_factory, wav2lip_checkpoint, page):
    """``page``: Debian's Chromium under Playwright (tests/web/conftest.py; skips without it)."""
    with waiting_for_weights(daemon_factory) as (_, web, checkpoint):
        page.goto(f"{web.url}/")
        badge = page.locator("article.service .badge").first
        assert badge.inner_text() == "waiting for the model files"
        assert f"place wav2lip_gan.pth at {checkpoint.resolve()}" in page.locator(".model-file").inner_text()
        place(wav2lip_checkpoint, checkpoint)
        page.wait_for_selector(".model-file", state="detached")  # the live page, without a reload
        wait_js(page, "document.querySelector('article.service .badge').innerText === 'ready'")
