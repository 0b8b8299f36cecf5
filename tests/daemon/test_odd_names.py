"""Names that are not valid UTF-8 (Latin-1 and CP437 clients, old NFS mounts, unzipped legacy archives).

The real `heygemd run` on real files: names are made with bytes, as such a client writes them.
The bytes stay on disk; JSON, logs and the page show an escaped form; the service never dies
and never stops watching.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from service_harness import Daemon, drop_job, service_config

from heygemd.engine.ffmpeg_tools import ffmpeg_path

pytestmark = pytest.mark.slow


def start(daemon_factory) -> Daemon:
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    daemon.start()
    daemon.wait_ready()
    return daemon


def latin1(name: bytes) -> str:
    """The str Python gives for these bytes on disk (undecodable bytes as surrogate escapes)."""
    return os.fsdecode(name)


def test_odd_template_audio_and_extra_names_are_rendered_and_shown_escaped(daemon_factory, media):
    daemon = start(daemon_factory)
    job = "odd-files"
    folder = drop_job(
        daemon.inbox,
        job,
        {
            latin1(b"voix\xe9.wav"): media["audio"],
            latin1(b"face\xff.mp4"): media["video"],
            latin1(b"notes-\xff.md"): b"notes",  # an extra file (a .txt is a script since the speech merge)
        },
    )
    assert folder.exists()
    outbox = daemon.wait_outbox(job)
    report = json.loads((outbox / "job.json").read_text(encoding="utf-8"))
    assert report["status"] == "ok", report
    assert report["audio"] == "voix\\xe9.wav"  # the display form: a backslash, "xe9"
    assert [video["template"] for video in report["videos"]] == ["face\\xff.mp4"]
    # The bytes on disk are kept: the output names carry the template's bytes.
    assert any(os.fsencode(entry.name).startswith(b"face\xff") for entry in outbox.iterdir())
    assert daemon.wait_for(lambda: daemon.logged("job done"), "the job's end in the log")[0]["job"] == "odd-files"
    assert daemon.logged("job accepted")[0]["audio"] == "voix\\xe9.wav"
    page = (outbox / "index.html").read_text(encoding="utf-8")
    assert "face\\xff.mp4" in page and "face%FF" in page  # shown escaped, linked by its bytes
    assert daemon.process is not None and daemon.process.poll() is None
    assert daemon.stop() == 0


def test_an_odd_job_folder_name_is_published_and_the_service_keeps_watching(daemon_factory, media):
    daemon = start(daemon_factory)
    odd = latin1(b"caf\xe9-job")
    drop_job(daemon.inbox, odd, {"speech.wav": media["audio"], "presenter.mp4": media["video"]})
    daemon.wait_for(lambda: (daemon.outbox / odd / "job.json").exists(), "the odd-named job in the outbox")
    drop_job(daemon.inbox, "after", {"speech.wav": media["audio"], "presenter.mp4": media["video"]})
    daemon.wait_outbox("after")
    status = json.loads((daemon.state / "status.json").read_text(encoding="utf-8"))
    assert "surrogates" not in json.dumps(status)
    assert daemon.stop() == 0


PAUSING_FFMPEG = """#!/bin/bash
# The first encode stops (SIGSTOP) so that the test can kill the service in the middle of the job.
case " $* " in *" -movflags "*)
  if mkdir "$PAUSE_DIR/paused" 2>/dev/null; then echo $$ > "$PAUSE_DIR/pid"; kill -STOP $$; fi ;;
esac
exec "$REAL_FFMPEG" "$@"
"""


def test_a_job_with_odd_names_survives_a_crash_the_journal_keeps_the_bytes(daemon_factory, media, tmp_path):
    pause = tmp_path / "pause"
    pause.mkdir()
    launcher = pause / "ffmpeg"
    launcher.write_text(PAUSING_FFMPEG)
    launcher.chmod(0o755)
    env = {"HEYGEMD_FFMPEG": str(launcher), "REAL_FFMPEG": ffmpeg_path(), "PAUSE_DIR": str(pause)}
    daemon = daemon_factory(env=env)
    daemon.write_config(service_config(daemon.root))
    daemon.start()
    daemon.wait_ready()
    odd = latin1(b"r\xe9sum\xe9")
    drop_job(daemon.inbox, odd, {latin1(b"voix\xe9.wav"): media["audio"], latin1(b"face\xff.mp4"): media["video"]})
    pid = int(daemon.wait_for(lambda: (pause / "pid").exists() and (pause / "pid").read_text().strip(), "the encoder"))
    daemon.kill9()
    os.kill(pid, signal.SIGKILL)  # the stopped encoder the killed service left
    daemon.start()
    daemon.wait_ready()
    report = json.loads(
        (
            daemon.wait_for(
                lambda: (daemon.outbox / odd / "job.json").exists() and daemon.outbox / odd,
                "the job to be finished after the restart",
            )
            / "job.json"
        ).read_text()
    )
    assert report["status"] == "ok" and report["job"] == "r\\xe9sum\\xe9", report
    assert daemon.logged("resuming a claimed job")[0]["job"] == "r\\xe9sum\\xe9"
    assert daemon.stop() == 0
