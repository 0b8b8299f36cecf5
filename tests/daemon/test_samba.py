"""Uploads through a real Samba server (smbd on loopback) into the inbox of a real `heygemd run`.

The SMB client (smbprotocol) writes in chunks and pauses longer than the settle window with its
handle open, as Windows and macOS clients on Wi-Fi do; once it also sets the full size first.
No job may be claimed before the client closes its files, and the published video and audio
must be as long as the whole upload's audio.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from service_harness import FAST_WATCH, Daemon, service_config

from heygemd.daemon.status import read_status
from heygemd.engine.probe import probe_audio, probe_video

pytestmark = pytest.mark.slow

PAUSE_SECONDS = FAST_WATCH["settle_seconds"] + 1.0  # the client's pause: longer than the settle window
CHUNKS = 3
FRAME_SECONDS = 1 / 25  # the template's frame rate: lengths agree within one frame


class SmbClient:
    def __init__(self, server, daemon: Daemon) -> None:
        self.server = server
        self.parts = (daemon.root.name, "inbox")

    def path(self, *names: str) -> str:
        return self.server.unc(*self.parts, *names)

    def mkdir(self, job: str) -> None:
        import smbclient

        smbclient.mkdir(self.path(job), **self.server.client_options)

    def put(self, job: str, name: str, data: bytes) -> None:
        with self.open(job, name) as handle:
            handle.write(data)

    @contextmanager
    def open(self, job: str, name: str) -> Iterator:
        import smbclient

        with smbclient.open_file(self.path(job, name), mode="wb", **self.server.client_options) as handle:
            yield handle


def start_service(samba, daemon_factory, **sections) -> tuple[Daemon, SmbClient]:
    daemon = daemon_factory(samba.share / f"svc-{time.monotonic_ns()}")
    daemon.write_config(service_config(daemon.root, **sections))
    daemon.start().wait_ready()
    return daemon, SmbClient(samba, daemon)


def waiting_reason(daemon: Daemon, job: str) -> str | None:
    status = read_status(daemon.state)
    return status.waiting_for.get(job) if status is not None else None


def assert_not_claimed(daemon: Daemon, job: str) -> None:
    assert (daemon.inbox / job).is_dir(), "the job folder left the inbox"
    assert not daemon.work.exists() or not any(daemon.work.iterdir()), "something was claimed into work/"
    assert not list((daemon.state / "jobs").glob("*.json")), "the journal holds a claimed job"
    assert not daemon.logged("job claimed")


def wait_open_seen(daemon: Daemon, job: str) -> None:
    daemon.wait_for(
        lambda: "still open for writing" in (waiting_reason(daemon, job) or ""), f"{job} to be seen open for writing"
    )


def write_in_chunks(handle, data: bytes, daemon: Daemon, job: str) -> None:
    """Write ``data`` in CHUNKS parts, pausing longer than the settle window after each, handle open."""
    size = -(-len(data) // CHUNKS)
    for start in range(0, len(data), size):
        handle.write(data[start : start + size])
        handle.flush()
        wait_open_seen(daemon, job)
        time.sleep(PAUSE_SECONDS)  # the client's pause (this is the scenario, not a wait for an outcome)
        assert_not_claimed(daemon, job)
        assert "still open for writing" in waiting_reason(daemon, job)


def assert_published_whole(daemon: Daemon, job: str, audio: Path) -> None:
    folder = daemon.wait_outbox(job)
    report = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    assert report["status"] == "ok"
    output = folder / report["videos"][0]["output"]
    expected = probe_audio(audio).duration
    assert abs(probe_audio(output).duration - expected) <= FRAME_SECONDS
    assert abs(probe_video(output).duration - expected) <= FRAME_SECONDS  # dry run: the template fitted to the audio


def test_an_upload_paused_with_its_handle_open_is_not_claimed_until_closed(samba, daemon_factory, media):
    daemon, client = start_service(samba, daemon_factory)
    client.mkdir("paused")
    client.put("paused", "presenter.mp4", media["video"].read_bytes())
    with client.open("paused", "speech.wav") as handle:
        write_in_chunks(handle, media["audio"].read_bytes(), daemon, "paused")
    assert_published_whole(daemon, "paused", media["audio"])
    assert len(daemon.logged("job claimed")) == 1


def test_full_size_set_before_the_content_is_not_claimed_until_closed(samba, daemon_factory, media):
    # Windows' copy engine: set the end of file to the final size, then write the content.
    daemon, client = start_service(samba, daemon_factory)
    audio = media["audio"].read_bytes()
    client.mkdir("presized")
    client.put("presized", "presenter.mp4", media["video"].read_bytes())
    with client.open("presized", "speech.wav") as handle:
        handle.truncate(len(audio))
        handle.flush()
        assert (daemon.inbox / "presized" / "speech.wav").stat().st_size == len(audio)
        wait_open_seen(daemon, "presized")
        time.sleep(PAUSE_SECONDS)  # full size, quiet, and nothing written yet
        assert_not_claimed(daemon, "presized")
        handle.seek(0)
        write_in_chunks(handle, audio, daemon, "presized")
    assert_published_whole(daemon, "presized", media["audio"])


def test_a_marker_dropped_first_waits_for_the_file_still_open(samba, daemon_factory, media):
    daemon, client = start_service(samba, daemon_factory, watch={"readiness": "marker"})
    client.mkdir("marked")
    client.put("marked", "READY", b"")
    client.put("marked", "speech.wav", media["audio"].read_bytes())
    with client.open("marked", "presenter.mp4") as handle:
        write_in_chunks(handle, media["video"].read_bytes(), daemon, "marked")
    assert_published_whole(daemon, "marked", media["audio"])
