"""The upload page as a studio: files dropped on it are listed with their sizes, durations and a player, and what
the service would refuse is said before anything is sent; what only a probe can tell is refused at once with its code.

A real `heygemd run` and `heygemd web` in Debian's Chromium; the drop is a real DragEvent carrying real files.
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote

import pytest
from browsing import screenshot, wait_js
from webserver import serving

pytestmark = pytest.mark.slow

TEXT = b"Minutes of the meeting\nnot a video at all\n" * 40


def drop_files(page, files: dict[str, bytes]) -> None:
    """Drop these files on the page's drop zone, as a person dragging them from a file manager does."""
    page.evaluate(
        """(files) => {
        const transfer = new DataTransfer();
        for (const [name, data] of Object.entries(files)) {
            const bytes = Uint8Array.from(atob(data), character => character.charCodeAt(0));
            transfer.items.add(new File([bytes], name));
        }
        const zone = document.getElementById('drop');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""",
        {name: base64.b64encode(data).decode() for name, data in files.items()},
    )


def listed(page) -> dict[str, str]:
    return {
        item.get_attribute("data-name"): item.inner_text().replace("\n", " ")
        for item in page.query_selector_all("#chosen li")
    }


def refusals(page) -> list[str]:
    return [item.inner_text() for item in page.query_selector_all("#refusals li")]


def remove(page, name: str) -> None:
    page.click(f'#chosen li[data-name="{name}"] button.remove')


def test_drop_files_see_them_and_their_refusals_then_send(daemon_factory, page, media):
    audio, video = Path(media["audio"]).read_bytes(), Path(media["video"]).read_bytes()
    with serving(daemon_factory) as (daemon, web):
        page.goto(f"{web.url}/upload")
        page.fill("input[name=name]", "dropped")
        drop_files(
            page,
            {"speech.wav": audio, "presenter.mp4": video, "notes.mp4": TEXT, "notes.txt": TEXT, "PRESENTER.mp4": video},
        )
        wait_js(page, "document.querySelectorAll('#chosen li').length === 5")
        wait_js(page, "(document.querySelector('#chosen audio') || {}).duration > 1")  # the audio's player is ready
        shown = listed(page)
        assert "audio" in shown["speech.wav"] and "1.2 s" in shown["speech.wav"]
        assert f"{len(video) / 1024:.1f} KiB" in shown["presenter.mp4"]
        assert page.eval_on_selector("#chosen li[data-name='speech.wav'] audio", "player => player.controls")
        wait_js(page, "document.querySelector('#chosen li[data-name=\"presenter.mp4\"] .length').textContent !== ''")
        assert "1.0 s" in listed(page)["presenter.mp4"]
        assert refusals(page) == ['"notes.txt" is not a video or an image.', 'Two files are named "PRESENTER.mp4".']
        assert page.is_disabled("#submit")
        wait_js(page, "document.querySelector('#chosen li[data-name=\"presenter.mp4\"] video').readyState >= 2")  # a frame
        screenshot(page, "upload-dropped.png")

        remove(page, "notes.txt")
        remove(page, "PRESENTER.mp4")
        wait_js(page, "document.getElementById('refusals').hidden")
        assert sorted(listed(page)) == ["notes.mp4", "presenter.mp4", "speech.wav"]
        page.click("#submit")  # the text named .mp4 passes the page's checks; the service's probe refuses it
        page.wait_for_selector("#upload-error:not([hidden])")
        assert "notes.mp4" in page.inner_text("#upload-error") and "ffmpeg can read" in page.inner_text("#upload-error")
        assert list(daemon.inbox.iterdir()) == []

        remove(page, "notes.mp4")
        page.click("#submit")
        page.wait_for_url(f"{web.url}/jobs/{quote('dropped')}")
        page.wait_for_selector("#live .heading[data-phase=done][data-status=ok]")
        assert "Audio: speech.wav" in page.inner_text("#job-facts")
