"""`heygemd run` as a real process: one service per state folder, crash leftovers, the history after a
kill -9, and the status while the inbox is missing (dry-run engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from service_harness import Daemon, drop_job, service_config

from heygemd.daemon.journal import JobRecord, Phase, VideoRecord, history_entry
from heygemd.daemon.reports import JobStatus, VideoStatus, utc_now
from heygemd.daemon.servicelock import LOCK_FILE
from heygemd.daemon.status import WAITING_FOR_INBOX
from heygemd.exitcodes import ExitCode
from heygemd.names import temporary_name

pytestmark = pytest.mark.slow

REFUSED = "another heygemd is running with this state folder; not starting"


def start(daemon_factory) -> Daemon:
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    daemon.start()
    daemon.wait_ready()
    return daemon


def restart(daemon: Daemon) -> None:
    """Start again on the same log and wait for this run's own "ready"."""
    before = len(daemon.logged("ready"))
    daemon.start()
    daemon.wait_for(lambda: len(daemon.logged("ready")) > before, "the restarted service to be ready")


def second_on_same_folder(first: Daemon) -> Daemon:
    second = Daemon(first.root)
    second.log_path = first.root / "second.log"
    return second


def history(daemon: Daemon) -> list[dict]:
    path = daemon.state / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def records(daemon: Daemon) -> list[str]:
    folder = daemon.state / "jobs"
    return sorted(path.name for path in folder.glob("*.json")) if folder.exists() else []


def visible(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


def test_a_second_service_on_the_same_state_folder_refuses_to_start(daemon_factory):
    first = start(daemon_factory)
    assert first.process is not None
    status_before = json.loads((first.state / "status.json").read_text())

    second = second_on_same_folder(first)
    second.start()
    assert second.process is not None and second.process.wait(timeout=120) == ExitCode.ALREADY_RUNNING == 75
    second.process = None
    [line] = second.log_lines()  # one line, and nothing else written by the refused process
    assert line["event"] == REFUSED and line["level"] == "error"
    assert line["held_by_pid"] == first.process.pid and line["lock"] == str(Path("state") / LOCK_FILE)
    status_after = json.loads((first.state / "status.json").read_text())
    assert status_after["pid"] == first.process.pid and status_after["started_at"] == status_before["started_at"]
    assert first.process.poll() is None

    first.kill9()  # the kernel drops the lock with the process: the next start is not refused
    leftovers = [
        first.state / dead_process_temporary("status.json"),
        first.state / "jobs" / dead_process_temporary("20260101T000000Z-0a0b0c.json"),
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half-written")
    second.start()
    second.wait_ready()
    assert not any(path.exists() for path in leftovers)
    [cleaned] = second.logged("temporary files left by a crash removed")
    assert sorted(Path(path).name for path in cleaned["removed"]) == sorted(path.name for path in leftovers)
    assert (second.state / LOCK_FILE).read_text() == f"{second.process.pid}\n"
    assert second.stop() == 0
    assert (second.state / LOCK_FILE).read_text() == ""


def test_a_job_finished_just_before_a_kill_9_is_in_the_history_once(daemon_factory, media):
    daemon = start(daemon_factory)
    drop_job(daemon.inbox, "killed while finishing", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("killed while finishing")
    daemon.kill9()  # somewhere in publishing or finishing: every moment must end the same way

    restart(daemon)
    daemon.wait_for(lambda: records(daemon) == [] and visible(daemon.work) == [], "the job to be finished")
    daemon.wait_for(lambda: history(daemon), "the history line")
    assert [entry["job"] for entry in history(daemon)] == ["killed while finishing"]
    assert visible(daemon.outbox) == ["killed while finishing"]
    [line] = history(daemon)  # where the inputs were archived: the web's before/after view finds the template there
    assert Path(line["archive"]).name == "killed while finishing" and (daemon.archive / "killed while finishing").is_dir()
    assert daemon.stop() == 0


def finished_record(job_id: str, name: str, outbox: Path) -> JobRecord:
    finished = utc_now() - timedelta(minutes=1)
    return JobRecord(
        job_id=job_id,
        name=name,
        phase=Phase.DONE,
        status=JobStatus.OK,
        claimed_at=finished - timedelta(seconds=5),
        finished_at=finished,
        outbox_path=outbox / name,
        videos=[VideoRecord(template="v.mp4", output_stem="v", status=VideoStatus.OK)],
    )


def test_done_records_left_by_a_kill_are_finished_at_start_up(daemon_factory):
    """The exact crash points of finishing: DONE saved | history line | work folder removed | record removed."""
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    jobs = daemon.state / "jobs"
    jobs.mkdir(parents=True)
    # Killed right after DONE was saved: no history line, the work folder (its results published) still there.
    before_line = finished_record("20260101T000000Z-0a0b0c", "killed before the line", daemon.outbox)
    (jobs / f"{before_line.job_id}.json").write_text(before_line.model_dump_json())
    job_dir = daemon.work / before_line.job_id
    job_dir.mkdir(parents=True)
    (job_dir / "output").mkdir()
    # Killed after the line and the work folder's removal, before the record's.
    after_line = finished_record("20260101T000001Z-0d0e0f", "killed after the line", daemon.outbox)
    (jobs / f"{after_line.job_id}.json").write_text(after_line.model_dump_json())
    (daemon.state / "history.jsonl").write_text(history_entry(after_line).model_dump_json() + "\n")  # as mark_done does

    daemon.start()
    daemon.wait_ready()
    daemon.wait_for(lambda: records(daemon) == [] and visible(daemon.work) == [], "the finished jobs to be cleared")
    assert [(entry["job"], entry["job_id"]) for entry in history(daemon)] == [
        ("killed after the line", after_line.job_id),
        ("killed before the line", before_line.job_id),
    ]
    assert history(daemon)[1] == json.loads(history_entry(before_line).model_dump_json())
    [recovered] = daemon.logged("finished job recorded in the history after an interrupted finish")
    assert recovered["job_id"] == before_line.job_id
    assert daemon.stop() == 0


def test_status_says_waiting_for_the_inbox_while_it_is_missing(daemon_factory):
    daemon = start(daemon_factory)

    def state() -> str:
        try:
            return json.loads((daemon.state / "status.json").read_text())["state"]
        except (OSError, ValueError):
            return ""

    os.rename(daemon.inbox, daemon.root / "unmounted")
    daemon.wait_for(lambda: state() == WAITING_FOR_INBOX, "the status to say it waits for the inbox")
    shown = subprocess.run(
        [sys.executable, "-m", "heygemd", "status", "--config", str(daemon.config_path)],
        cwd=daemon.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "waiting for the inbox: inbox is missing" in shown.stdout, shown.stdout
    assert "idle" not in shown.stdout
    os.rename(daemon.root / "unmounted", daemon.inbox)
    daemon.wait_for(lambda: state() == "idle", "the status to be idle again")
    assert daemon.stop() == 0


def dead_process_temporary(final_name: str) -> str:
    """The temporary name a process of this machine that no longer runs would have used."""
    return temporary_name(final_name).replace(f"-{os.getpid()}-", "-4194304-")  # above any pid_max: never alive
