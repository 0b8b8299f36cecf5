"""Any legal name works: 255-byte job, audio and template names in ASCII and CJK, dropped twice, with and without zips.

Each name is as long as the filesystem allows, so every name heygemd derives from it (the
" (2)" of a second drop, the zip bundle, temporary names, output files) must be shortened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from service_harness import Daemon, drop_job, service_config

pytestmark = pytest.mark.slow

NAME_MAX = 255
CJK = "名"  # 3 bytes
ASCII_JOB = "j" * 255
CJK_JOB = CJK * 85  # 255 bytes
PARTIAL_JOB = "p" * 254 + "P"
FAILING_JOB = "失" * 85


def size(name: str) -> int:
    return len(os.fsencode(name))


def names_in(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


def job_files(media: dict[str, Path], script: str) -> dict[str, Path]:
    if script == "ascii":
        return {"a" * 251 + ".wav": media["audio"], "v" * 251 + ".mp4": media["video"]}
    return {"音" * 83 + "xx.wav": media["audio"], CJK * 83 + "xx.mp4": media["video"]}  # 255 bytes each


def drop_twice(daemon: Daemon, jobs: dict[str, dict[str, Path | bytes]]) -> None:
    """Drop every job, wait until each is claimed, then drop it again under the same name."""
    for _ in range(2):
        for name, files in jobs.items():
            drop_job(daemon.inbox, name, files)
        daemon.wait_for(lambda: not any((daemon.inbox / name).exists() for name in jobs), "the jobs to be claimed")


def start(daemon_factory, zip_bundle: bool) -> Daemon:
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root, outputs={"zip_bundle": zip_bundle}))
    daemon.start()
    daemon.wait_ready()
    return daemon


def wait_idle(daemon: Daemon) -> None:
    jobs = daemon.state / "jobs"
    daemon.wait_for(lambda: names_in(daemon.work) == [] and not list(jobs.glob("*.json")), "claimed jobs to finish")


@pytest.mark.parametrize("zip_bundle", [False, True], ids=["folders", "zip"])
def test_255_byte_names_dropped_twice_are_all_published(daemon_factory, media, zip_bundle):
    daemon = start(daemon_factory, zip_bundle)
    ascii_files, cjk_files = job_files(media, "ascii"), job_files(media, "cjk")
    bad_template = "b" * 251 + ".mp4"
    drop_twice(
        daemon,
        {
            ASCII_JOB: ascii_files,
            CJK_JOB: cjk_files,
            PARTIAL_JOB: {**ascii_files, bad_template: b"not a video\n" * 20},
            FAILING_JOB: {"音" * 83 + "xx.wav": media["audio"]},  # no template: quarantined whole
        },
    )

    # The outbox folder leaves room for ".zip", so a zip is always named as its folder; archive and quarantine keep 255.
    outbox = {
        ASCII_JOB: ["j" * 251, "j" * 247 + " (2)"],
        CJK_JOB: [CJK * 83, CJK * 82 + " (2)"],
        PARTIAL_JOB: ["p" * 251, "p" * 247 + " (2)"],
    }
    archive = {
        ASCII_JOB: [ASCII_JOB, "j" * 251 + " (2)"],
        CJK_JOB: [CJK_JOB, CJK * 83 + " (2)"],
        PARTIAL_JOB: [PARTIAL_JOB, "p" * 251 + " (2)"],
    }
    quarantine = {PARTIAL_JOB: archive[PARTIAL_JOB], FAILING_JOB: [FAILING_JOB, "失" * 83 + " (2)"]}

    for job, folders in outbox.items():
        for folder in folders:
            report = json.loads((daemon.wait_outbox(folder) / "job.json").read_text(encoding="utf-8"))
            assert report["job"] == job and report["status"] == ("partial" if job == PARTIAL_JOB else "ok")
            rendered = next(video for video in report["videos"] if video["status"] == "ok")
            for name in (rendered["output"], rendered["report"]):
                assert size(name) <= NAME_MAX and (daemon.outbox / folder / name).is_file()
            if zip_bundle:
                daemon.wait_for((daemon.outbox / f"{folder}.zip").is_file, f"the zip of {folder}")
    for job, folders in quarantine.items():
        for folder in folders:
            error = daemon.wait_quarantine(folder)
            assert error["job"] == job
    wait_idle(daemon)

    expected_outbox = sorted(
        name
        for folders in outbox.values()
        for folder in folders
        for name in ([folder, f"{folder}.zip"] if zip_bundle else [folder])
    )
    assert names_in(daemon.outbox) == expected_outbox
    assert names_in(daemon.archive) == sorted(name for folders in archive.values() for name in folders)
    assert names_in(daemon.quarantine) == sorted(name for folders in quarantine.values() for name in folders)
    for folder in quarantine[PARTIAL_JOB]:  # the failed template and a copy of the 255-byte audio
        assert names_in(daemon.quarantine / folder) == sorted([bad_template, "a" * 251 + ".wav", "error.json"])
    for folder in archive[CJK_JOB]:
        assert names_in(daemon.archive / folder) == sorted(cjk_files)
    assert names_in(daemon.inbox) == [] and names_in(daemon.work) == []
    assert daemon.stop() == 0  # first: a running service's status.json is rewritten through a temporary name
    for path in daemon.root.rglob("*"):
        assert size(path.name) <= NAME_MAX and not path.name.endswith(".tmp"), path
    assert not daemon.logged("internal error; the job stays claimed and is tried again")
    assert not daemon.logged("filesystem error; the job stays claimed and is tried again")


def test_start_up_removes_leftovers_and_a_dot_named_folder_is_reported_once(daemon_factory, media):
    from heygemd.names import machine_tag

    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    crashed = f"heygemd-{machine_tag()}-{dead.pid}-abcdef.tmp"
    for folder in (daemon.outbox, daemon.state / "jobs"):
        folder.mkdir(parents=True)
    leftovers = [daemon.outbox / f".{ASCII_JOB[:200]}.zip.{crashed}", daemon.state / "jobs" / f".x.json.{crashed}"]
    live = daemon.outbox / f".other.heygemd-{machine_tag()}-{os.getpid()}-abcdef.tmp"  # this test is alive
    for path in [*leftovers, live]:
        path.write_bytes(b"half")
    daemon.start()
    daemon.wait_ready()
    assert not any(path.exists() for path in leftovers) and live.exists()
    assert daemon.logged("temporary files left by a crash removed")

    drop_job(daemon.inbox, ".hidden-job", {"a.wav": media["audio"], "v.mp4": media["video"]})
    drop_job(daemon.inbox, "visible", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("visible")  # scanned many times meanwhile
    warned = daemon.logged("folder whose name starts with a dot left alone; rename it without the dot to make it a job")
    assert [line["entry"] for line in warned] == [".hidden-job"]
    assert (daemon.inbox / ".hidden-job" / "a.wav").exists()
    assert daemon.stop() == 0
