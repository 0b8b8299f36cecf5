"""Start-up clean-up of heygemd's own leftover temporary files, in every folder it writes to and nowhere else,
and of the audio snapshots a killed render left in the configured engine.temp_dir."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from service_harness import service_config

from heygemd.daemon.claim import WorkArea
from heygemd.daemon.config import PathsConfig
from heygemd.daemon.leftovers import clean_leftovers, service_folders
from heygemd.engine.snapshot import SNAPSHOT_PREFIX
from heygemd.names import machine_tag


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_a_crash_are_removed_everywhere_heygemd_writes(tmp_path):
    paths = PathsConfig(**{key: tmp_path / key for key in ("inbox", "outbox", "quarantine", "work", "archive", "state")})
    work = WorkArea(paths.work)
    job = paths.work / "20260101T000000Z-abcdef"
    for folder in (
        paths.inbox / "job",
        paths.outbox,
        paths.quarantine,
        paths.archive,
        paths.state / "jobs",
        job / "input",
        job / "failed",
        job / "output-me",
    ):
        folder.mkdir(parents=True)
    crashed = f"heygemd-{machine_tag()}-{dead_pid()}-abcdef.tmp"
    live = f"heygemd-{machine_tag()}-{os.getppid()}-abcdef.tmp"
    leftovers = [
        paths.outbox / f".a.zip.{crashed}",
        paths.quarantine / f".b.{crashed}",
        paths.archive / f".c.{crashed}",
        paths.state / f".status.json.{crashed}",
        paths.state / "jobs" / f".x.json.{crashed}",
        job / f".record-me.json.{crashed}",
        job / "input" / f".error.json.{crashed}",
        job / "failed" / f".a.wav.{crashed}",
        job / "output-me" / f".v.mp4.{crashed}",
    ]
    kept = [
        paths.outbox / f".d.{live}",
        paths.inbox / f".e.{crashed}",
        paths.inbox / "job" / f".f.{crashed}",
        paths.outbox / "job.mp4",
        paths.outbox / ".DS_Store",
    ]
    for path in leftovers + kept:
        path.write_text("x")
    staging = paths.outbox / f".g.{crashed}"  # a copy of a folder, interrupted
    (staging / "inside").mkdir(parents=True)
    assert paths.state / "jobs" in service_folders(paths, work, [paths.state / "jobs"])

    result = clean_leftovers(paths, work, time.time() + 1, [paths.state / "jobs"])
    assert sorted(result.removed) == sorted(leftovers + [staging]) and result.failed == []
    assert all(path.exists() for path in kept)


@pytest.mark.slow
def test_the_service_removes_the_audio_snapshots_a_killed_render_left(daemon_factory):
    daemon = daemon_factory()
    snapshots = daemon.root / "snapshots"
    config = service_config(daemon.root)
    config["engine"]["temp_dir"] = str(snapshots)
    daemon.write_config(config)
    left = snapshots / f"{SNAPSHOT_PREFIX}k1ll3d"
    left.mkdir(parents=True)
    (left / "snapshot.wav").write_bytes(b"RIFF half a snapshot")
    other = snapshots / "not-heygemds.wav"  # the folder may hold what is not heygemd's: kept
    other.write_bytes(b"x")

    daemon.start()
    daemon.wait_ready()
    assert not left.exists() and other.exists()
    [removed] = daemon.logged("audio snapshots left by a crash removed")
    assert removed["count"] == 1 and removed["folder"] == str(snapshots)
    assert daemon.stop() == 0
