"""Errors that must end: each failure reaches quarantine once with its code, or is retried and then ends.

The real `heygemd run` on real files (dry-run engine, real ffmpeg). Faults of the environment are
injected around the real programs: an ffmpeg launcher that kills or stops itself before running the
real ffmpeg (as the OOM killer or a stalled share would), an input appended to while it renders, and
a service user that cannot read a file.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_harness import Daemon, drop_job, service_config

from heygemd.engine.ffmpeg_tools import ffmpeg_path
from heygemd.engine.files import sha256_file
from heygemd.engine.snapshot import SERVICE_SNAPSHOTS_FOLDER, SNAPSHOT_PREFIX

pytestmark = pytest.mark.slow

FAST_RETRIES = {"retry_first_delay_seconds": 0.5, "retry_max_delay_seconds": 1.0, "retry_attempts": 3}


def start(daemon_factory, env: dict[str, str] | None = None, **sections) -> Daemon:
    daemon = daemon_factory(env=env)
    sections["service"] = {**FAST_RETRIES, **sections.get("service", {})}
    daemon.write_config(service_config(daemon.root, **sections))
    daemon.start()
    daemon.wait_ready()
    return daemon


def history(daemon: Daemon) -> list[dict]:
    path = daemon.state / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def ended_once(daemon: Daemon, job: str) -> dict:
    """The job's one history line, once it ended; it must be in exactly one place, once."""
    entries = daemon.wait_for(lambda: [entry for entry in history(daemon) if entry["job"] == job], f"{job} to end")
    assert len(entries) == 1, entries
    assert not (daemon.quarantine / f"{job} (2)").exists() and not (daemon.outbox / f"{job} (2)").exists()
    return entries[0]


# ---------------------------------------------------------------------------- an ffmpeg that fails from outside


FAULTY_FFMPEG = """#!/bin/bash
# Fault injection around the real ffmpeg: the first $FAULT_TIMES runs of the kind $FAULT_KIND
# are killed (kill), stopped forever (stop) or exit with an error (exit) before they start; every other
# run is the real ffmpeg.
case " $* " in
  *" -movflags "*) kind=encode ;;
  *" rawvideo "*) kind=decode ;;
  *) kind=other ;;
esac
if [ "$kind" = "$FAULT_KIND" ]; then
  count=$(cat "$FAULT_DIR/count" 2>/dev/null || echo 0)
  echo $((count + 1)) > "$FAULT_DIR/count"
  if [ "$count" -lt "$FAULT_TIMES" ]; then
    case "$FAULT_ACTION" in
      kill) kill -9 $$ ;;
      stop) kill -STOP $$ ;;
      exit) echo "Unknown encoder setting (injected)" >&2; exit 1 ;;
    esac
  fi
fi
exec "$REAL_FFMPEG" "$@"
"""


def faulty_ffmpeg(folder: Path, kind: str, action: str, times: int) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    launcher = folder / "ffmpeg"
    launcher.write_text(FAULTY_FFMPEG)
    launcher.chmod(0o755)
    return {
        "HEYGEMD_FFMPEG": str(launcher),
        "REAL_FFMPEG": ffmpeg_path(),
        "FAULT_DIR": str(folder),
        "FAULT_KIND": kind,
        "FAULT_ACTION": action,
        "FAULT_TIMES": str(times),
    }


TRANSIENT_CASES = {
    # name: (kind of ffmpeg run, what happens to it, the code it must be reported as)
    "encoder killed": ("encode", "kill", "process.killed"),
    "encoder exits early": ("encode", "exit", "render.encoder_failed"),  # not the input's fault: never input.*
    "decoder stalled": ("decode", "stop", "render.stalled"),
}


@pytest.mark.parametrize("case", sorted(TRANSIENT_CASES))
def test_a_transient_failure_is_retried_and_then_the_job_is_published(daemon_factory, media, tmp_path, case):
    kind, action, code = TRANSIENT_CASES[case]
    env = faulty_ffmpeg(tmp_path / "fault", kind, action, times=1)
    daemon = start(daemon_factory, env=env, service={"stall_seconds": 3.0})
    drop_job(daemon.inbox, "flaky", {"a.wav": media["audio"], "v.mp4": media["video"]})
    report = json.loads((daemon.wait_outbox("flaky") / "job.json").read_text())
    assert report["status"] == "ok"
    retried = daemon.logged("video hit a transient error; tried again later")
    assert [line["code"] for line in retried] == [code]
    assert ended_once(daemon, "flaky")["status"] == "ok"
    assert daemon.stop() == 0


@pytest.mark.parametrize("case", sorted(TRANSIENT_CASES))
def test_a_transient_failure_that_persists_ends_in_quarantine_with_its_code(daemon_factory, media, tmp_path, case):
    kind, action, code = TRANSIENT_CASES[case]
    env = faulty_ffmpeg(tmp_path / "fault", kind, action, times=1000)
    daemon = start(daemon_factory, env=env, service={"stall_seconds": 3.0, "retry_attempts": 2})
    drop_job(daemon.inbox, "broken", {"a.wav": media["audio"], "v.mp4": media["video"]})
    error = daemon.wait_quarantine("broken")
    assert error["code"] == code and [video["code"] for video in error["failed_videos"]] == [code]
    assert len(daemon.logged("video hit a transient error; tried again later")) == 1  # 2 attempts: 1 retry
    assert sorted(os.listdir(daemon.quarantine / "broken")) == ["a.wav", "error.json", "v.mp4"]  # inputs untouched
    assert ended_once(daemon, "broken")["code"] == code
    assert daemon.stop() == 0


def test_status_says_why_a_claimed_job_waits_and_when_it_retries(daemon_factory, media, tmp_path):
    env = faulty_ffmpeg(tmp_path / "fault", "encode", "kill", times=1)
    daemon = start(daemon_factory, env=env, service={"retry_first_delay_seconds": 30.0, "retry_max_delay_seconds": 30.0})
    drop_job(daemon.inbox, "later", {"a.wav": media["audio"], "v.mp4": media["video"]})

    def waiting() -> list[dict]:
        status = json.loads((daemon.state / "status.json").read_text())
        return status["waiting_jobs"]

    waits = daemon.wait_for(waiting, "the job to wait for its retry")
    assert waits[0]["job"] == "later" and waits[0]["code"] == "process.killed" and waits[0]["retry_at"]
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "heygemd", "status", "--config", str(daemon.config_path)],
        cwd=daemon.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "later: waits: process.killed (failure 1 of 3); next try" in shown.stdout, shown.stdout
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------- inputs that change after the claim


def append_while_rendering(daemon: Daemon, job: str, audio_name: str, data: bytes) -> threading.Thread:
    """Append to the claimed audio (where a still-open SMB upload keeps writing) once the first video is done."""

    def append() -> None:
        daemon.wait_for(lambda: daemon.logged("video done"), "the first video")
        input_dir = next(daemon.work.glob("*/input"))
        with open(input_dir / audio_name, "ab") as handle:
            handle.write(data)

    thread = threading.Thread(target=append)
    thread.start()
    return thread


def many_templates(media: dict[str, Path], count: int) -> dict[str, Path]:
    return {"voice.wav": media["audio"], **{f"take {index:02}.mp4": media["video"] for index in range(count)}}


def test_an_input_changed_while_rendering_is_never_published_from(daemon_factory, media):
    daemon = start(daemon_factory)
    drop_job(daemon.inbox, "changing", many_templates(media, 8))
    append_while_rendering(daemon, "changing", "voice.wav", b"\0" * 4096).join()

    out = daemon.wait_outbox("changing")
    report = json.loads((out / "job.json").read_text())
    assert report["status"] == "ok"
    assert daemon.logged("inputs changed after the claim (an upload still running?); not published from them")
    archived = daemon.wait_for(
        lambda: (daemon.archive / "changing" / "voice.wav").exists() and daemon.archive / "changing" / "voice.wav",
        "the archive",
    )
    voice = next(item for item in report["inputs"] if item["name"] == "voice.wav")
    assert voice["sha256"] == sha256_file(archived) and voice["size_bytes"] == archived.stat().st_size
    for video in report["videos"]:  # each was rendered (again) from the audio as it is now
        sidecar = json.loads((out / video["report"]).read_text())
        assert sidecar["audio"]["sha256"] == voice["sha256"], video
    assert daemon.stop() == 0


def test_an_input_that_keeps_changing_goes_to_quarantine_with_the_reason(daemon_factory, media):
    daemon = start(daemon_factory, watch={"max_input_changes": 0})
    drop_job(daemon.inbox, "still uploading", many_templates(media, 8))
    append_while_rendering(daemon, "still uploading", "voice.wav", b"\0" * 4096).join()
    error = daemon.wait_quarantine("still uploading")
    assert error["code"] == "input.changed_while_rendering"
    assert error["reason"].startswith('"voice.wav" was still changing while it was rendered: an upload was probably')
    assert not (daemon.outbox / "still uploading").exists()
    assert ended_once(daemon, "still uploading")["status"] == "failed"
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------- permanent failures: at once, once


@pytest.fixture
def unprivileged_root() -> Iterator[Path]:
    """A service folder owned by `nobody`, outside pytest's private temp folder, for a daemon run as `nobody`."""
    if os.geteuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip("needs root to run the service as another user (setpriv, util-linux)")
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run the service as another user")
    root = Path(tempfile.mkdtemp(prefix="heygemd-nobody-", dir="/tmp"))
    root.chmod(0o755)
    nobody = pwd.getpwnam("nobody")
    os.chown(root, nobody.pw_uid, nobody.pw_gid)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def run_as_nobody(daemon: Daemon) -> None:
    nobody = pwd.getpwnam("nobody")
    for path in [daemon.root, *daemon.root.rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
    daemon.command_prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"]


PERMANENT_CASES = {
    # name: (files of the job folder, the code); bytes are written as they are, Paths are copied
    "deep job.toml": ({"job.toml": b"render = " + b"[" * 1000 + b"]" * 1000}, "job_toml.invalid"),
    "bad job.toml key": ({"job.toml": b'[render]\ncrf = "best"\n'}, "job_toml.invalid"),
    "unknown template in job.toml": ({"job.toml": b'[videos."missing.mp4"]\ncrf = 20\n'}, "job_toml.invalid"),
    "text as audio": ({"voice.wav": b"not audio at all\n" * 100}, "input.undecodable"),
    "unreadable audio": ({}, "input.unreadable"),
}


def test_permanent_failures_reach_quarantine_at_once_each_with_its_code(daemon_factory, media, unprivileged_root):
    daemon = daemon_factory(root=unprivileged_root / "service")
    daemon.write_config(service_config(daemon.root, service=FAST_RETRIES))
    for folder in (daemon.inbox, daemon.outbox, daemon.quarantine):
        folder.mkdir(parents=True, exist_ok=True)
    run_as_nobody(daemon)
    daemon.start()
    daemon.wait_ready()
    for case, (files, _) in PERMANENT_CASES.items():
        job_files: dict[str, Path | bytes] = {"voice.wav": media["audio"], "v.mp4": media["video"], **files}
        staging = unprivileged_root / f".staging-{case}"
        drop_job(unprivileged_root, staging.name, job_files)
        if case == "unreadable audio":
            (staging / "voice.wav").chmod(0)
        run_as_nobody_files(staging)
        if case == "unreadable audio":
            os.chown(staging / "voice.wav", 0, 0)  # owned by root, mode 000: the service user cannot read it
        os.rename(staging, daemon.inbox / case)

    for case, (_, code) in PERMANENT_CASES.items():
        error = daemon.wait_quarantine(case)
        assert error["code"] == code, (case, error)
        assert ended_once(daemon, case)["code"] == code
        assert not daemon.logged("transient error; the job stays claimed and is tried again")
    unreadable = daemon.quarantine / "unreadable audio" / "voice.wav"
    assert stat.S_IMODE(unreadable.stat().st_mode) == 0 and unreadable.stat().st_uid == 0  # untouched
    assert "voice.wav" in daemon.wait_quarantine("unreadable audio")["reason"]
    assert daemon.stop() == 0


def test_one_unreadable_template_among_several_fails_alone_and_the_others_are_published(
    daemon_factory, media, unprivileged_root
):
    daemon = daemon_factory(root=unprivileged_root / "service")
    daemon.write_config(service_config(daemon.root, service=FAST_RETRIES))
    for folder in (daemon.inbox, daemon.outbox, daemon.quarantine):
        folder.mkdir(parents=True, exist_ok=True)
    run_as_nobody(daemon)
    daemon.start()
    daemon.wait_ready()
    staging = unprivileged_root / ".staging-one-unreadable"
    drop_job(
        unprivileged_root, staging.name, {"voice.wav": media["audio"], "a.mp4": media["video"], "b.mp4": media["video"]}
    )
    run_as_nobody_files(staging)
    (staging / "b.mp4").chmod(0)
    os.chown(staging / "b.mp4", 0, 0)  # owned by root, mode 000: the service user cannot read it
    os.rename(staging, daemon.inbox / "one unreadable")
    report = json.loads((daemon.wait_outbox("one unreadable") / "job.json").read_text())
    assert report["status"] == "partial", report
    assert {video["template"]: video["code"] for video in report["videos"]} == {"a.mp4": None, "b.mp4": "input.unreadable"}
    error = daemon.wait_quarantine("one unreadable")
    assert [video["code"] for video in error["failed_videos"]] == ["input.unreadable"]
    assert stat.S_IMODE((daemon.quarantine / "one unreadable" / "b.mp4").stat().st_mode) == 0  # untouched
    assert daemon.stop() == 0


def test_the_details_of_a_failed_job_name_each_template_once(daemon_factory, media):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root, service=FAST_RETRIES))
    daemon.start()
    daemon.wait_ready()
    drop_job(daemon.inbox, "broken clip", {"voice.wav": media["audio"], "clip.mp4": media["truncated"]})
    error = daemon.wait_quarantine("broken clip")
    assert error["details"] and all(detail.startswith("clip.mp4: ") for detail in error["details"]), error
    assert not [detail for detail in error["details"] if detail.startswith("clip.mp4: clip.mp4")], error
    assert daemon.stop() == 0


def run_as_nobody_files(folder: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)


STALLING_AUDIO_DECODER = """#!/bin/bash
# The first decode of the audio snapshot (to snapshot.wav) stops for ever, as on a stalled share.
case " $* " in *"snapshot.wav"*)
  if mkdir "$FAULT_DIR/stopped" 2>/dev/null; then printf '%s\n' "$@" > "$FAULT_DIR/arguments"; kill -STOP $$; fi ;;
esac
exec "$REAL_FFMPEG" "$@"
"""


def test_a_stalled_audio_decoder_is_stopped_as_render_stalled_and_the_job_is_retried(daemon_factory, media, tmp_path):
    folder = tmp_path / "fault"
    folder.mkdir()
    launcher = folder / "ffmpeg"
    launcher.write_text(STALLING_AUDIO_DECODER)
    launcher.chmod(0o755)
    system_temp = tmp_path / "system-tmp"
    system_temp.mkdir()
    env = {"HEYGEMD_FFMPEG": str(launcher), "REAL_FFMPEG": ffmpeg_path(), "FAULT_DIR": str(folder)}
    daemon = start(daemon_factory, env=env | {"TMPDIR": str(system_temp)}, service={"stall_seconds": 3.0})
    drop_job(daemon.inbox, "slow audio", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_for((folder / "arguments").exists, "the audio decoder to stop")
    # Where the stopped decoder was writing, recorded by it (the snapshot may be gone once the stall is caught).
    written = next(Path(line) for line in (folder / "arguments").read_text().splitlines() if line.endswith("snapshot.wav"))
    written = daemon.root / written  # relative to the service's working folder, as the config names the state
    assert written.parent.parent.resolve() == (daemon.state / SERVICE_SNAPSHOTS_FOLDER).resolve(), written
    assert written.parent.name.startswith(SNAPSHOT_PREFIX), written
    assert not [entry for entry in system_temp.iterdir() if entry.name.startswith(SNAPSHOT_PREFIX)], "not in /tmp"
    report = json.loads((daemon.wait_outbox("slow audio") / "job.json").read_text())
    assert report["status"] == "ok"
    assert (folder / "stopped").exists(), "the decoder was stopped once"
    retried = daemon.logged("transient error; the job stays claimed and is tried again")
    assert [line["code"] for line in retried] == ["render.stalled"]
    assert daemon.stop() == 0
