"""Retention (outputs.keep_days) on real folders, ages set with os.utime."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from record_keeper import keeper
from small_fs import mounted_tmpfs
from structlog.testing import capture_logs

from heygemd.daemon.claim import WorkArea
from heygemd.daemon.config import AfterSuccess, PathsConfig
from heygemd.daemon.journal import JobRecord, Journal, Phase
from heygemd.daemon.logs import get_logger
from heygemd.daemon.outputs import Destinations, dispose_inputs
from heygemd.daemon.retention import (
    RETENTION_INTERVAL_SECONDS,
    RetentionClock,
    apply_retention,
    expired_entries,
)

DAY = 86400
NOW = time.time()


def aged(path: Path, days: float) -> Path:
    stamp = NOW - days * DAY
    os.utime(path, (stamp, stamp), follow_symlinks=False)
    return path


def folder(path: Path, days: float) -> Path:
    path.mkdir(parents=True)
    (path / "result.mp4").write_bytes(b"video")
    aged(path / "result.mp4", days)
    return aged(path, days)


def file(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"zip")
    return aged(path, days)


@pytest.fixture
def paths(tmp_path) -> PathsConfig:
    return PathsConfig(**{name: tmp_path / name for name in ("inbox", "work", "outbox", "quarantine", "archive", "state")})


@pytest.fixture
def service(paths) -> dict[str, Path]:
    """Entries of every kind, old and young, in the three folders retention looks at."""
    return {
        "old outbox folder": folder(paths.outbox / "campaign 1", 40),
        "old zip": file(paths.outbox / "campaign 1.zip", 41),
        "young outbox folder": folder(paths.outbox / "campaign 2", 5),
        "zip being written": file(paths.outbox / ".campaign 3.zip.heygemd-partial", 100),
        "hidden folder": folder(paths.outbox / ".staging", 100),
        "loose file": file(paths.outbox / "notes.txt", 100),
        "old quarantine": folder(paths.quarantine / "broken", 50),
        "old archive": folder(paths.archive / "campaign 0", 60),
        "young archive": folder(paths.archive / "campaign 2", 29),
        "old job in progress": folder(paths.work / "20200101T000000Z-abcdef", 100),
        "old inbox folder": folder(paths.inbox / "waiting", 100),
    }


def test_old_entries_are_listed_oldest_first_and_nothing_else(paths, service):
    listed = [expired.path for expired in expired_entries(paths, 30, NOW)]
    assert listed == [service["old archive"], service["old quarantine"], service["old zip"], service["old outbox folder"]]


def test_retention_removes_them_and_logs_each(paths, service):
    with capture_logs() as logs:
        removed = apply_retention(paths, 30, get_logger("test"), now=NOW)
    gone = ["old archive", "old quarantine", "old zip", "old outbox folder"]
    assert removed == [service[name] for name in gone]
    for name, path in service.items():
        assert os.path.lexists(path) is (name not in gone), name
    assert [(entry["event"], entry["path"], entry["age_days"]) for entry in logs] == [
        ("retention: removed an old entry", str(service[name]), age) for name, age in zip(gone, (60, 50, 41, 40))
    ]


def test_off_by_default(paths, service):
    assert expired_entries(paths, 0, NOW) == []
    assert apply_retention(paths, 0, get_logger("test"), now=NOW) == []


def test_links_are_never_followed_nor_removed(paths, tmp_path):
    precious = folder(tmp_path / "elsewhere", 100)
    paths.outbox.mkdir()
    os.symlink(precious, paths.outbox / "link", target_is_directory=True)
    aged(paths.outbox / "link", 100)
    assert expired_entries(paths, 30, NOW) == []
    assert (precious / "result.mp4").exists()


def test_a_service_folder_inside_the_outbox_is_never_removed(tmp_path):
    paths = PathsConfig(
        inbox=tmp_path / "inbox",
        outbox=tmp_path / "out",
        quarantine=tmp_path / "out" / "failed",
        archive=tmp_path / "out",
        work=tmp_path / "out" / "work",
        state=tmp_path / "state",
    )
    folder(paths.work / "job", 100)
    folder(paths.quarantine / "broken", 101)
    aged(paths.work, 100)
    aged(paths.quarantine, 100)
    expired = folder(paths.outbox / "campaign", 100)
    assert [entry.path for entry in expired_entries(paths, 30, NOW)] == [paths.quarantine / "broken", expired]


def test_an_entry_that_cannot_be_removed_is_logged_and_the_others_go_on(paths, service):
    stuck = service["old quarantine"]
    with mounted_tmpfs(stuck / "mounted", 64 * 1024):  # a mount point cannot be removed, even by root
        aged(stuck, 50)
        with capture_logs() as logs:
            removed = apply_retention(paths, 30, get_logger("test"), now=NOW)
        assert stuck.exists() and stuck not in removed
    assert removed == [service["old archive"], service["old zip"], service["old outbox folder"]]
    assert [entry["path"] for entry in logs if entry["event"] == "retention: cannot remove an old entry"] == [str(stuck)]


def test_the_clock_is_due_at_start_up_then_every_interval():
    clock = RetentionClock()
    assert clock.due(100.0)
    assert not clock.due(100.0 + RETENTION_INTERVAL_SECONDS - 1)
    assert clock.due(100.0 + RETENTION_INTERVAL_SECONDS)


def test_an_archived_job_is_aged_from_its_arrival_not_from_its_upload(paths):
    """Copy tools keep files' and folders' times, and a rename keeps them too: archiving stamps the folder."""
    work = WorkArea(paths.work)
    journal = Journal(paths.state)
    record = JobRecord(job_id="20200101T000000Z-abcdef", name="campaign", phase=Phase.PUBLISHING)
    folder(work.input_dir(record.job_id), 400)
    dispose_inputs(record, AfterSuccess.ARCHIVE, Destinations(paths, work), keeper(journal))
    assert record.archive_path == paths.archive / "campaign"
    assert record.archive_path.stat().st_mtime > NOW - 60
    assert expired_entries(paths, 30, time.time()) == []
