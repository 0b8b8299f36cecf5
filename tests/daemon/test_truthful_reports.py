"""Reports that do not contradict themselves (a real `heygemd run`, dry run, on real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from service_harness import FAST_WATCH, drop_job, service_config


def _start(daemon_factory, **sections):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root, **sections))
    daemon.start()
    daemon.wait_ready()
    return daemon


def test_a_partly_done_job_names_its_outbox_folder_in_error_json(daemon_factory, media):
    daemon = _start(daemon_factory)
    (daemon.outbox / "mixed").mkdir()  # taken: the results get another name, which error.json must give
    drop_job(daemon.inbox, "mixed", {"a.wav": media["audio"], "good.mp4": media["video"], "bad.mp4": media["truncated"]})
    error = daemon.wait_quarantine("mixed")
    outbox = daemon.wait_for(
        lambda: next((path for path in daemon.outbox.iterdir() if (path / "job.json").exists()), None), "the results"
    )
    assert "the others are in the outbox" in error["reason"]
    daemon.wait_for(lambda: daemon.logged("job done"), "the job to be done")
    named = json.loads((daemon.quarantine / "mixed" / "error.json").read_text())["outbox_folder"]
    assert named is not None and daemon.root / named == outbox  # (paths as configured: relative to the service's folder)
    assert outbox.name != "mixed" and (outbox / "good.mp4").is_file()
    report = json.loads((outbox / "job.json").read_text())
    assert report["status"] == "partial" and daemon.root / report["quarantine_folder"] == daemon.quarantine / "mixed"
    assert daemon.stop() == 0


def test_status_shows_the_reasons_it_says_are_below(daemon_factory, media):
    daemon = _start(daemon_factory)
    drop_job(
        daemon.inbox, "all bad", {"a.wav": media["audio"], "one.mp4": media["truncated"], "two.mp4": media["truncated"]}
    )
    error = daemon.wait_quarantine("all bad")
    assert [video["template"] for video in error["failed_videos"]] == ["one.mp4", "two.mp4"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEYGEMD_")}
    shown = subprocess.run(
        [sys.executable, "-m", "heygemd", "status", "--config", str(daemon.config_path)],
        cwd=daemon.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    lines = shown.splitlines()
    [reason_at] = [index for index, line in enumerate(lines) if "the reason for each is below" in line]
    below = [line.strip() for line in lines[reason_at + 1 : reason_at + 3]]
    assert below[0].startswith("one.mp4: ") and below[1].startswith("two.mp4: "), shown
    assert not any(line.startswith(("one.mp4: one.mp4", "two.mp4: two.mp4")) for line in below), shown
    assert all(not detail.startswith(("one.mp4: one.mp4", "two.mp4: two.mp4")) for detail in error["details"])
    assert daemon.stop() == 0


def test_the_results_page_counts_from_the_drop_and_speaks_the_jobs_language(daemon_factory, media):
    daemon = _start(daemon_factory)
    dropped_at = datetime.now(UTC)
    drop_job(daemon.inbox, "english", {"a.wav": media["audio"], "v.mp4": media["video"]})
    drop_job(daemon.inbox, "中文", {"job.toml": b'language = "zh"\n', "a.wav": media["audio"], "v.mp4": media["video"]})
    for name, language, words in (("english", "en", "s from drop to result"), ("中文", "zh-Hans", "从放入到完成")):
        folder = daemon.wait_outbox(name)
        report = json.loads((folder / "job.json").read_text(encoding="utf-8"))
        received, claimed = (datetime.fromisoformat(report[key]) for key in ("received_at", "claimed_at"))
        finished = datetime.fromisoformat(report["finished_at"])
        # arrival is before the claim by at least the settle window the service waits after the last write
        assert received >= dropped_at - timedelta(seconds=1)
        assert (claimed - received).total_seconds() >= FAST_WATCH["settle_seconds"], report
        assert report["seconds"] == round((finished - received).total_seconds(), 3)
        page = (folder / "index.html").read_text(encoding="utf-8")
        assert f'<html lang="{language}">' in page and words in page
        seconds = f"{report['seconds']:.0f}"
        assert (f"{seconds} s from drop" if language == "en" else f"从放入到完成 {seconds} 秒") in page
    assert daemon.stop() == 0


def test_the_configured_language_is_the_default(daemon_factory, media):
    daemon = _start(daemon_factory, outputs={"language": "zh"})
    drop_job(daemon.inbox, "configured", {"a.wav": media["audio"], "v.mp4": media["video"]})
    page = (daemon.wait_outbox("configured") / "index.html").read_text(encoding="utf-8")
    assert '<html lang="zh-Hans">' in page and "已完成" in page and "Done:" not in page
    assert daemon.stop() == 0
