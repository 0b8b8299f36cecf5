"""Inputs that change kind after the claim: deleted, replaced by a link or by a FIFO.

The real `heygemd run` on real files. A faulty ffmpeg launcher stops the first render for a moment
(SIGSTOP, then the test continues it), so that the test changes the job's files after the claim
and before the next video, as a person or a script on the share would.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from service_harness import Daemon, drop_job, service_config

from heygemd.engine.ffmpeg_tools import ffmpeg_path

pytestmark = pytest.mark.slow

PAUSING_FFMPEG = """#!/bin/bash
# The first encode waits (stopped) until the test has changed the job's files, then is the real ffmpeg.
case " $* " in *" -movflags "*)
  if mkdir "$PAUSE_DIR/paused" 2>/dev/null; then echo $$ > "$PAUSE_DIR/pid"; kill -STOP $$; fi ;;
esac
exec "$REAL_FFMPEG" "$@"
"""


def start(daemon_factory, tmp_path: Path) -> tuple[Daemon, Path]:
    pause = tmp_path / "pause"
    pause.mkdir()
    launcher = pause / "ffmpeg"
    launcher.write_text(PAUSING_FFMPEG)
    launcher.chmod(0o755)
    env = {"HEYGEMD_FFMPEG": str(launcher), "REAL_FFMPEG": ffmpeg_path(), "PAUSE_DIR": str(pause)}
    daemon = daemon_factory(env=env)
    daemon.write_config(service_config(daemon.root, service={"stall_seconds": 600.0}))
    daemon.start()
    daemon.wait_ready()
    return daemon, pause


def claimed_input(daemon: Daemon, name: str) -> Path:
    found = daemon.wait_for(lambda: list(daemon.work.glob(f"*/input/{name}")), f"{name} in the work area")
    return found[0]


def resume(daemon: Daemon, pause: Path) -> None:
    pid = int(
        daemon.wait_for(lambda: (pause / "pid").exists() and (pause / "pid").read_text().strip(), "the paused encoder")
    )
    os.kill(pid, signal.SIGCONT)


SECRET = b"the target of the link: must never reach a result"


@pytest.mark.parametrize("swap", ["deleted", "symlink", "fifo"])
def test_a_template_swapped_after_the_claim_fails_alone_with_an_input_code(daemon_factory, media, tmp_path, swap):
    daemon, pause = start(daemon_factory, tmp_path)
    files = {"speech.wav": media["audio"], "a-first.mp4": media["video"], "b-second.mp4": media["video"]}
    drop_job(daemon.inbox, "swapped", files)
    second = claimed_input(daemon, "b-second.mp4")
    daemon.wait_for(lambda: (pause / "pid").exists(), "the first render to be under way")
    second.unlink()
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(SECRET)
    if swap == "symlink":
        second.symlink_to(secret)
    elif swap == "fifo":
        os.mkfifo(second)
    resume(daemon, pause)
    report = json.loads((daemon.wait_outbox("swapped") / "job.json").read_text())
    assert report["status"] == "partial", report
    videos = {video["template"]: video for video in report["videos"]}
    assert videos["a-first.mp4"]["status"] == "ok"
    expected = "input.missing" if swap == "deleted" else "input.replaced"
    assert videos["b-second.mp4"]["status"] == "failed" and videos["b-second.mp4"]["code"] == expected
    error = json.loads((daemon.quarantine / "swapped" / "error.json").read_text())
    assert [video["code"] for video in error["failed_videos"]] == [expected]
    for folder in (daemon.outbox, daemon.quarantine):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert SECRET not in path.read_bytes(), path
    assert not daemon.logged("transient error; the job stays claimed and is tried again")
    assert daemon.stop() == 0


def test_fingerprint_each_names_the_unreadable_and_swapped_inputs(tmp_path):
    from heygemd.daemon.inputs import fingerprint_each

    (tmp_path / "ok.mp4").write_bytes(b"ok")
    os.mkfifo(tmp_path / "pipe.mp4")
    (tmp_path / "link.mp4").symlink_to(tmp_path / "ok.mp4")
    inputs, failures = fingerprint_each(tmp_path, ["ok.mp4", "pipe.mp4", "link.mp4", "gone.mp4"])
    assert [item.name for item in inputs] == ["ok.mp4"]
    assert {name: failure.code.value for name, failure in failures.items()} == {
        "pipe.mp4": "input.replaced",
        "link.mp4": "input.replaced",
        "gone.mp4": "input.missing",
    }
