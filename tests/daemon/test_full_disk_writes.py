"""Writes that meet a full disk (a real tmpfs) fail with ENOSPC, keep what was there, and leave no junk behind."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from record_keeper import keeper
from small_fs import fill, mounted_tmpfs

from heygemd.atomic import write_atomic
from heygemd.codes import ErrorCode, failure_from_os_error
from heygemd.daemon.claim import WorkArea
from heygemd.daemon.config import PathsConfig
from heygemd.daemon.fsutil import move_without_overwrite
from heygemd.daemon.journal import JobRecord, Journal, Phase
from heygemd.daemon.outputs import Destinations, write_zip_bundle

SMALL = 256 * 1024
BIG_TEXT = "x" * (64 * 1024)


@pytest.fixture
def full(tmp_path) -> Path:
    """A small filesystem with 8 KiB left."""
    with mounted_tmpfs(tmp_path / "small", SMALL) as small:
        (small / "kept.json").write_text('{"old": true}\n')
        fill(small, 8 * 1024)
        yield small


def names(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def test_write_atomic_keeps_the_old_content_and_leaves_no_temporary_file(full):
    before = names(full)
    with pytest.raises(OSError) as caught:
        write_atomic(full / "kept.json", BIG_TEXT)
    assert caught.value.errno == errno.ENOSPC
    assert failure_from_os_error(caught.value, "saving the job's record").code is ErrorCode.DISK_FULL
    assert (full / "kept.json").read_text() == '{"old": true}\n'
    assert names(full) == before


def test_a_journal_record_that_does_not_fit_keeps_the_previous_one(full):
    journal = Journal(full / "state")
    record = JobRecord(job_id="20200101T000000Z-abcdef", name="campaign", phase=Phase.CLAIMED)
    journal.save(record)
    record.warnings = [BIG_TEXT]
    with pytest.raises(OSError, match="No space left on device"):
        journal.save(record)
    assert [saved.warnings for saved in journal.records()] == [[]]
    assert names(journal.jobs_dir) == [f"{record.job_id}.json"]


def test_a_zip_bundle_that_does_not_fit_leaves_no_partial_zip(tmp_path):
    with mounted_tmpfs(tmp_path / "outbox", SMALL) as outbox:
        published = outbox / "campaign"
        published.mkdir()
        (published / "job.json").write_text("{}\n")
        (published / "front.mp4").write_bytes(bytes(range(256)) * 256)  # 64 KiB, stored as is in the zip
        fill(outbox, 8 * 1024)
        before = names(outbox)
        paths = PathsConfig(outbox=outbox, work=tmp_path / "work", state=tmp_path / "state")
        record = JobRecord(job_id="20200101T000000Z-abcdef", name="campaign", phase=Phase.PUBLISHING, outbox_path=published)
        with pytest.raises(OSError, match="No space left on device"):
            write_zip_bundle(record, Destinations(paths, WorkArea(paths.work)), keeper(Journal(paths.state)))
        assert names(outbox) == before, "no hidden partial zip may stay in the outbox"


def test_a_copy_to_another_filesystem_that_does_not_fit_leaves_the_source_and_no_staging(full, tmp_path):
    source = tmp_path / "job"
    source.mkdir()
    (source / "voice.wav").write_bytes(b"\1" * 64 * 1024)
    before = names(full)
    with pytest.raises(OSError, match="No space left on device"):
        move_without_overwrite(source, full, "job")
    assert names(full) == before
    assert (source / "voice.wav").stat().st_size == 64 * 1024
