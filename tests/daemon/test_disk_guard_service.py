"""`heygemd run` on a share that is a real small filesystem (a tmpfs): a job waits for disk space, nothing is lost.

The whole share (inbox, work, outbox, quarantine, archive) is one tmpfs, as one NAS volume
would be: a claim is a rename. The state folder and the log stay outside, so that only the
service's results take space on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from media_factory import make_audio, make_video
from service_harness import Daemon, drop_job, service_config
from small_fs import PAGE, fill, free_bytes, mounted_tmpfs

from heygemd.daemon.status import WAITING_FOR_DISK

pytestmark = pytest.mark.slow

SHARE_SIZE = 2 << 20
SHARE_FOLDERS = ("inbox", "work", "outbox", "quarantine", "archive")
NOT_ENOUGH = "not enough disk space for the job's results; it stays in the inbox until space is freed"
ENOUGH_AGAIN = "disk space available again; the job is claimed"
REMOVED = "retention: removed an old entry"
JOURNAL_KEPT = "the journal cannot be written; the job's record is kept in memory and written at the next step"


class Share:
    def __init__(self, root: Path) -> None:
        self.root = root
        for name in SHARE_FOLDERS:
            (root / name).mkdir(exist_ok=True)

    def __getattr__(self, name: str) -> Path:
        if name in SHARE_FOLDERS:
            return self.root / name
        raise AttributeError(name)

    def paths(self, state: Path) -> dict[str, str]:
        return {name: str(self.root / name) for name in SHARE_FOLDERS} | {"state": str(state)}


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {entry.name: (entry.stat().st_size, entry.stat().st_mtime_ns, entry.read_bytes()) for entry in folder.iterdir()}


def entries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


def status_json(daemon: Daemon) -> dict:
    try:
        return json.loads((daemon.state / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def start_on_share(
    daemon_factory, share_root: Path, outputs: dict, env: dict[str, str] | None = None
) -> tuple[Daemon, Share]:
    daemon = daemon_factory(env=env)
    share = Share(share_root)
    # A short rescan keeps the loop turning while nothing arrives, so several scans of a waiting job happen quickly.
    daemon.write_config(
        service_config(
            daemon.root,
            paths=share.paths(daemon.state),
            outputs=outputs,
            watch={"rescan_interval_seconds": 0.5},
            service={"retry_first_delay_seconds": 1.0, "retry_max_delay_seconds": 2.0},  # a full disk is retried soon
        )
    )
    daemon.start()
    daemon.wait_ready()
    return daemon, share


def wait_scans(daemon: Daemon, count: int) -> None:
    """Let the service loop turn ``count`` more times (it rewrites status.json on each turn)."""
    seen: set[str] = set()

    def turned() -> bool:
        seen.add(status_json(daemon).get("updated_at", ""))
        return len(seen) > count

    daemon.wait_for(turned, f"{count} turns of the service loop")


def published(daemon: Daemon, share: Share, job: str) -> dict:
    report = share.outbox / job / "job.json"
    daemon.wait_for(lambda: report.exists() or (share.quarantine / job).exists(), f"{job} to be published")
    assert report.exists(), f"{job} went to quarantine: {entries(share.quarantine / job)}\n{daemon.tail()}"
    daemon.wait_for(lambda: entries(share.work) == [], "the work area to be empty")
    return json.loads(report.read_text())


def test_a_job_whose_results_do_not_fit_waits_in_the_inbox_until_space_is_freed(
    daemon_factory, tmp_path, media, notify_socket
):
    files = {"speech.wav": media["audio"], "front.mp4": media["video"], "side.mp4": media["video"]}
    inputs = sum(path.stat().st_size for path in files.values())
    audio, template = media["audio"].stat().st_size, media["video"].stat().st_size
    need = 2 * (2 * template + audio) + audio  # the estimate (diskspace.py): two videos, and the audio's quarantine copy
    reserve = 256 * 1024
    with mounted_tmpfs(tmp_path / "share", SHARE_SIZE) as share_root:
        daemon, share = start_on_share(
            daemon_factory, share_root, {"min_free_space": f"{reserve}B"}, env={"NOTIFY_SOCKET": str(notify_socket.path)}
        )
        # After the drop, half the job's estimate stays free above the reserve (plus the pages the inputs round up to).
        filler = fill(share.root, inputs + len(files) * PAGE + reserve + need // 2)
        drop_job(share.inbox, "campaign", files)
        assert free_bytes(share.root) < reserve + need
        before = snapshot(share.inbox / "campaign")

        warning = daemon.wait_for(lambda: daemon.logged(NOT_ENOUGH), "the disk-space warning")[0]
        assert warning["job"] == "campaign" and warning["filesystem"] == str(share.work)
        daemon.wait_for(lambda: status_json(daemon).get("state") == WAITING_FOR_DISK, "status: waiting for disk space")
        daemon.wait_for(
            lambda: any(line.startswith(f'STATUS={WAITING_FOR_DISK}: job "campaign"') for line in notify_socket.messages),
            "STATUS=waiting for disk space",
        )
        shown = subprocess.run(
            [sys.executable, "-m", "heygemd", "status", "--config", str(daemon.config_path)],
            cwd=daemon.root,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert f'{WAITING_FOR_DISK}: job "campaign"' in shown and 'no space   job "campaign"' in shown
        wait_scans(daemon, 4)
        assert len(daemon.logged(NOT_ENOUGH)) == 1, "logged once, not on every scan"
        assert [shortage["job"] for shortage in status_json(daemon)["waiting_for_disk"]] == ["campaign"]
        assert snapshot(share.inbox / "campaign") == before, "the waiting job is not touched"
        assert entries(share.work) == [] and not daemon.logged("job claimed")

        filler.unlink()
        report = published(daemon, share, "campaign")
        assert report["status"] == "ok" and [video["status"] for video in report["videos"]] == ["ok", "ok"]
        assert len(daemon.logged(ENOUGH_AGAIN)) == 1 and len(daemon.logged(NOT_ENOUGH)) == 1
        assert entries(share.inbox) == []
        assert {name: path.read_bytes() for name, path in files.items()} == {
            name: (share.archive / "campaign" / name).read_bytes() for name in files
        }, "nothing is lost"
        assert not [name for name in entries(share.outbox) if name.startswith(".")]
        daemon.wait_for(lambda: status_json(daemon).get("waiting_for_disk") == [], "the status to forget the wait")
        assert daemon.stop() == 0


@pytest.fixture(scope="module")
def looped(tmp_path_factory) -> dict[str, Path]:
    """A 1 s template under 4 s of audio: its render (looped, lossless) is far larger than the estimate."""
    folder = tmp_path_factory.mktemp("looped")
    return {
        "speech.wav": make_audio(folder / "speech.wav", seconds=4.0),
        "front.mp4": make_video(folder / "front.mp4", seconds=1.0, size=(160, 160)),
    }


def test_a_disk_that_fills_during_the_render_is_a_transient_error_and_the_job_is_published_later(
    daemon_factory, tmp_path, looped
):
    job_toml = tmp_path / "job.toml"
    job_toml.write_text("[render]\ncrf = 0\n")  # lossless: the output outgrows the estimate, deterministically
    files = {**looped, "job.toml": job_toml}
    inputs = sum(path.stat().st_size for path in files.values())
    audio, template = looped["speech.wav"].stat().st_size, looped["front.mp4"].stat().st_size
    need = (2 * template + audio) + audio
    reserve = 16 * 1024
    with mounted_tmpfs(tmp_path / "share", SHARE_SIZE) as share_root:
        daemon, share = start_on_share(daemon_factory, share_root, {"min_free_space": f"{reserve}B"})
        # Enough for the estimate, so the job is claimed; not enough for the lossless render (~500 KB).
        filler = fill(share.root, inputs + len(files) * PAGE + need + reserve + 32 * 1024)
        drop_job(share.inbox, "looped", files)

        daemon.wait_for(
            lambda: "disk is full" in daemon.log_path.read_text() or "disk.full" in daemon.log_path.read_text(),
            "the render to meet the full disk",
        )
        assert not daemon.logged(NOT_ENOUGH), "the guard let the job in: the disk filled during the render"
        assert not [path.name for path in share.root.rglob("*") if "partial" in path.name], "the partial output is removed"
        assert not (share.quarantine / "looped").exists(), "a full disk is transient: the job is not set aside"

        filler.unlink()
        report = published(daemon, share, "looped")
        assert report["status"] == "ok" and report["videos"][0]["status"] == "ok"
        assert {name: path.read_bytes() for name, path in files.items()} == {
            name: (share.archive / "looped" / name).read_bytes() for name in files
        }
        assert daemon.stop() == 0


def test_retention_at_start_up_removes_old_results_and_keeps_the_rest(daemon_factory):
    daemon = daemon_factory()
    day = 86400

    def made(path: Path, days: float, folder: bool = True) -> Path:
        if folder:
            path.mkdir(parents=True)
            (path / "job.json").write_text("{}\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"zip")
        stamp = path.stat().st_mtime - days * day
        os.utime(path, (stamp, stamp))
        return path

    old = [
        made(daemon.archive / "campaign 0", 60),
        made(daemon.quarantine / "broken", 50),
        made(daemon.outbox / "campaign 1.zip", 41, folder=False),
        made(daemon.outbox / "campaign 1", 40),
    ]
    kept = [
        made(daemon.outbox / "campaign 2", 29),
        made(daemon.outbox / ".campaign 3.zip.heygemd-partial", 100, folder=False),
        made(daemon.outbox / "notes.txt", 100, folder=False),
    ]
    daemon.write_config(service_config(daemon.root, outputs={"keep_days": 30}))
    daemon.start()
    daemon.wait_ready()
    removed = daemon.wait_for(lambda: len(daemon.logged(REMOVED)) >= 4 and daemon.logged(REMOVED), "retention at start-up")
    assert [Path(line["path"]).name for line in removed] == [path.name for path in old], "oldest first"
    assert not any(os.path.lexists(path) for path in old) and all(path.exists() for path in kept)
    assert daemon.stop() == 0


class KeepFull:
    """Another writer that keeps the filesystem full: whatever space is freed, it takes (until ``stop``)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "greedy-filler"
        self._handle = open(self.path, "ab")  # opened while there is room for a new file
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, daemon=True)

    def __enter__(self) -> KeepFull:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _fill(self) -> None:
        while not self._stop.is_set():
            try:
                self._handle.write(b"\0" * PAGE)
                self._handle.flush()
            except OSError:
                self._stop.wait(0.002)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self._handle.close()
        except OSError:
            pass  # its last buffered page did not fit: the file goes all the same
        self.path.unlink(missing_ok=True)


def test_a_full_disk_that_also_holds_the_state_folder_is_transient_and_never_internal(daemon_factory, tmp_path):
    """The default layout: the journal is on the disk that fills. A failed journal write is one more transient fault."""
    folder = tmp_path / "long"
    folder.mkdir()
    files = {
        "speech.wav": make_audio(folder / "speech.wav", seconds=20.0),
        "front.mp4": make_video(folder / "front.mp4", seconds=1.0, size=(160, 160)),
        "job.toml": folder / "job.toml",
    }
    files["job.toml"].write_text("[render]\ncrf = 0\n")  # lossless: a large output, written for a while
    with mounted_tmpfs(tmp_path / "share", 8 * SHARE_SIZE) as share_root:
        daemon = daemon_factory()
        share = Share(share_root)
        daemon.write_config(
            service_config(
                daemon.root,
                paths=share.paths(share_root / "state"),
                outputs={"min_free_space": "0B"},
                service={"retry_first_delay_seconds": 0.5, "retry_max_delay_seconds": 1.0, "retry_attempts": 1000},
            )
        )
        daemon.start()
        daemon.wait_ready()
        greedy = KeepFull(share.root)
        drop_job(share.inbox, "long", files)
        daemon.wait_for(lambda: daemon.logged("rendering"), "the render to start")
        with greedy:
            daemon.wait_for(
                lambda: daemon.logged(JOURNAL_KEPT) or (share.quarantine / "long").exists(),
                "a journal write to meet the full disk",
            )
        report = published(daemon, share, "long")
        assert report["status"] == "ok", report
        assert not [line for line in daemon.log_lines() if line.get("code") == "internal"], daemon.tail()
        assert daemon.stop() == 0
