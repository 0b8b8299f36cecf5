"""Names that are not valid UTF-8 (Latin-1 and CP437 clients, old NFS mounts, unzipped legacy archives).

The real `heygemd run` on real files: names are made with bytes, as such a client writes them.
The bytes stay on disk; JSON, logs and the page show an escaped form; the service never dies
and never stops watching.
"""

from __future__ import annotations

import json
import os

import pytest
from service_harness import Daemon, drop_job, service_config

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
            latin1(b"notes-\xff.txt"): b"notes",
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
