"""Every format `heygemd render` takes, the service takes too: a TIFF still and an FLV template end to end."""

from __future__ import annotations

import json

import pytest
from media_factory import make_still, make_video
from service_harness import TEMPLATE_SIZE, drop_job, service_config

pytestmark = pytest.mark.slow


def test_a_tiff_still_and_an_flv_template_are_rendered_not_quarantined(daemon_factory, media, tmp_path):
    still = make_still(tmp_path / "portrait.tiff", size=TEMPLATE_SIZE)
    flv = make_video(tmp_path / "clip.flv", seconds=0.6, fps="25", size=TEMPLATE_SIZE)
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    daemon.start()
    daemon.wait_ready()
    drop_job(
        daemon.inbox, "formats", {"speech.wav": media["audio"], "portrait.TIFF": still, "clip.flv": flv, "photo.tif": still}
    )

    published = daemon.outbox / "formats" / "job.json"
    daemon.wait_for(lambda: published.exists() or (daemon.quarantine / "formats").exists(), "the job to end")
    assert not (daemon.quarantine / "formats").exists(), daemon.tail()
    report = json.loads(published.read_text())
    assert report["status"] == "ok", report
    assert sorted(video["output"] for video in report["videos"]) == ["clip.mp4", "photo.mp4", "portrait.mp4"]
    assert daemon.stop() == 0
