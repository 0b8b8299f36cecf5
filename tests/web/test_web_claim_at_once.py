"""A web upload is claimed at once by a real `heygemd run` whose settle window is an hour; a folder dropped by hand
beside it, even with a copy of the web's mark, still waits for that window."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from service_harness import Daemon, drop_job
from webserver import WebProcess, serving

from heygemd.uploadmark import UPLOAD_MARK

pytestmark = pytest.mark.slow

HOUR = 3600.0


@pytest.fixture
def slow_settling_service(daemon_factory) -> Iterator[tuple[Daemon, WebProcess]]:
    with serving(daemon_factory, watch={"settle_seconds": HOUR, "network_settle_seconds": HOUR}) as running:
        yield running


def test_a_web_upload_skips_the_settle_window_and_a_hand_dropped_folder_does_not(slow_settling_service, media):
    daemon, web = slow_settling_service
    files = [
        ("audio", ("speech.wav", media["audio"].read_bytes(), "audio/wav")),
        ("templates", ("front.mp4", media["video"].read_bytes(), "video/mp4")),
    ]
    with httpx.Client(base_url=web.url, timeout=30) as client:
        answer = client.post("/api/jobs", files=files, data={"name": "from the page"})
        assert answer.status_code == 201, answer.text
    out = daemon.wait_outbox("from the page")  # the deadline is far below the hour of settling
    assert (out / "front.mp4").exists()
    archived = daemon.archive / "from the page"
    # the outbox is published before the job folder is archived: wait for the move, not only the results
    daemon.wait_for(lambda: (archived / UPLOAD_MARK).exists(), "the web upload to be archived")
    hand = daemon.root / "by hand"
    shutil.copytree(archived, hand)  # the archived upload, its mark included, copied back in by a person
    assert (hand / UPLOAD_MARK).exists()
    drop_job(daemon.inbox, "by hand", {path.name: path for path in hand.iterdir()})
    daemon.wait_for(lambda: "by hand" in (_status(daemon).get("arriving") or []), "the hand-dropped folder to be seen")
    status = _status(daemon)
    assert "settling" in status["waiting_for"]["by hand"] and status["queued"] == []


def _status(daemon: Daemon) -> dict:
    import json

    try:
        return json.loads((daemon.state / "status.json").read_text())
    except (OSError, ValueError):
        return {}
