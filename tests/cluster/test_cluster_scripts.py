"""Cluster mode with scripts and the presenter library: the coordinator speaks, real workers render (dry run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from service_harness import drop_job
from test_cluster import cluster  # noqa: F401  (the fixture: a coordinator, workers and a real redis-server)

pytestmark = pytest.mark.slow
ONE_FRAME_S = 1 / 25


def test_two_scripts_and_two_presenters_with_the_same_file_name(cluster, media, tmp_path: Path) -> None:  # noqa: F811
    daemon, _ = cluster(2)
    for presenter in ("anna", "ben"):  # both hold a front.mp4: the videos must not be mixed up
        folder = daemon.root / "presenters" / presenter
        folder.mkdir(parents=True)
        (folder / "front.mp4").write_bytes(media["video"].read_bytes())
    drop_job(
        daemon.inbox,
        "launch",
        {
            "hello.txt": b"Hello there. Welcome to the launch.",
            "ni hao.txt": "你好。欢迎来到发布会。".encode(),
            "job.toml": b'presenters = ["anna", "ben"]\nvoice = "espeak-ng"\n',
        },
    )
    out = daemon.wait_outbox("launch")
    report = json.loads((out / "job.json").read_text())
    assert report["status"] == "ok", report
    assert sorted(video["output"] for video in report["videos"]) == [
        "hello/anna-front.mp4", "hello/ben-front.mp4", "ni hao/anna-front.mp4", "ni hao/ben-front.mp4",
    ]  # fmt: skip
    speeches = {speech["audio"].split("/")[0]: speech for speech in report["speech"]}
    assert speeches["hello"]["voice"] == "espeak-ng:en-us" and speeches["ni hao"]["voice"] == "espeak-ng:cmn"
    for video in report["videos"]:
        subfolder, _ = video["output"].split("/")
        assert abs(video["output_duration_s"] - speeches[subfolder]["duration_s"]) <= ONE_FRAME_S + 0.001
        assert video["template"].endswith(f"{video['output'].split('/')[1].split('-')[0]}/front.mp4")
    assert len(daemon.logged("video done")) == 4
