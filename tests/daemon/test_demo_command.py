"""`heygemd demo`: a sample presenter and voice, one job end to end, and a plain word on what was real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

from service_harness import service_config, toml_text

from heygemd.engine.probe import probe_video


def _demo(cwd: Path, *arguments: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEYGEMD_")}
    return subprocess.run(
        [sys.executable, "-m", "heygemd", "demo", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _audio_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as sound:
        return sound.getnframes() / sound.getframerate()


def test_offline_without_weights_the_demo_renders_a_dry_run_and_says_so(tmp_path):
    config = tmp_path / "config" / "heygemd.toml"
    config.parent.mkdir()
    missing = tmp_path / "checkpoints" / "wav2lip_gan.pth"
    config.write_text(toml_text({"engine": {"checkpoint": str(missing), "device": "cpu"}}), encoding="utf-8")
    result = _demo(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{missing}: checkpoint file not found: rendering as a DRY RUN" in result.stdout
    assert "model      NOT REAL: a dry run" in result.stdout
    assert "scikit-image's astronaut" in result.stdout and "voice      " in result.stdout
    output = tmp_path / "demo" / "result" / "presenter.mp4"
    info = probe_video(output)
    speech = _audio_seconds(tmp_path / "demo" / "job" / "speech.wav")
    assert speech > 3 and abs(info.duration - speech) < 0.2  # the whole voice, over the still presenter
    assert (info.width, info.height) == (512, 512)
    report = json.loads((tmp_path / "demo" / "result" / "presenter.json").read_text())
    assert report["dry_run"] is True


def test_with_a_service_running_the_demo_is_a_job_through_its_inbox(daemon_factory):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    daemon.start()
    daemon.wait_ready()
    result = _demo(daemon.root, "--config", str(daemon.config_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the running service renders it" in result.stdout and "NOT REAL: a dry run" in result.stdout
    [outbox] = [path for path in daemon.outbox.iterdir() if path.name.startswith("heygemd demo")]
    report = json.loads((outbox / "job.json").read_text())
    assert report["status"] == "ok" and report["audio"] == "speech.wav"
    assert [video["template"] for video in report["videos"]] == ["presenter.png"]
    assert f"result     {outbox}" in result.stdout
    assert daemon.stop() == 0
