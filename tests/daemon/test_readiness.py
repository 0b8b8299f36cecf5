"""Readiness on real folders, with the clock passed in: settle, marker, abandon, loose files, missing inbox."""

from __future__ import annotations

import os

from heygemd.daemon.config import Readiness
from heygemd.daemon.readiness import ReadinessTracker


def tracker(readiness: Readiness = Readiness.SETTLE) -> ReadinessTracker:
    return ReadinessTracker(readiness=readiness, marker_name="READY", settle_seconds=10, abandon_after_seconds=100)


def names(items) -> list[str]:
    return [item.name for item in items]


def test_ready_only_after_nothing_changed_for_the_settle_time(tmp_path):
    inbox = tmp_path / "inbox"
    job = inbox / "job"
    job.mkdir(parents=True)
    (job / "a.wav").write_bytes(b"a")
    (job / "v.mp4").write_bytes(b"v" * 10)
    ready = tracker()
    assert names(ready.scan(inbox, 0).ready) == []  # first sight: the clock starts
    assert names(ready.scan(inbox, 9).ready) == []
    with open(job / "v.mp4", "ab") as handle:  # still growing
        handle.write(b"more")
    assert names(ready.scan(inbox, 12).ready) == [] and names(ready.scan(inbox, 21).ready) == []
    os.utime(job / "a.wav", ns=(1, 1))  # a changed mtime counts as a change too
    assert ready.scan(inbox, 23).ready == []
    assert names(ready.scan(inbox, 33).ready) == ["job"]


def test_temporary_and_empty_files_block_then_abandon(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "sync").mkdir(parents=True)
    (inbox / "sync" / "a.wav").write_bytes(b"a")
    (inbox / "sync" / ".syncthing.v.mp4.tmp").write_bytes(b"v")
    (inbox / "zero").mkdir()
    (inbox / "zero" / "a.wav").write_bytes(b"a")
    (inbox / "zero" / "v.mp4").write_bytes(b"")
    (inbox / "empty").mkdir()
    ready = tracker()
    ready.scan(inbox, 0)
    scan = ready.scan(inbox, 50)
    assert scan.ready == [] and sorted(scan.waiting) == ["empty", "sync", "zero"]
    abandoned = {item.name: item.reason for item in ready.scan(inbox, 101).abandoned}
    assert set(abandoned) == {"empty", "sync", "zero"}
    assert "stayed empty" in abandoned["empty"]
    assert "temporary" in abandoned["sync"] and '"v.mp4" (empty, 0 bytes)' in abandoned["zero"]


def test_clutter_does_not_block(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "job").mkdir(parents=True)
    for name, content in {"a.wav": b"a", "v.mp4": b"v", ".DS_Store": b"", "Thumbs.db": b""}.items():
        (inbox / "job" / name).write_bytes(content)
    ready = tracker()
    ready.scan(inbox, 0)
    assert names(ready.scan(inbox, 10).ready) == ["job"]


def test_marker_mode_waits_for_the_marker_only(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "job").mkdir(parents=True)
    (inbox / "job" / "a.wav").write_bytes(b"a")
    ready = tracker(Readiness.MARKER)
    assert ready.scan(inbox, 0).ready == [] and ready.scan(inbox, 1000).ready == []
    (inbox / "job" / "ready").write_bytes(b"")  # case-insensitive
    assert names(ready.scan(inbox, 1001).ready) == ["job"]


def test_oldest_ready_first(tmp_path):
    inbox = tmp_path / "inbox"
    ready = tracker()
    for name, at in (("b-first", 0), ("a-second", 5)):
        (inbox / name).mkdir(parents=True)
        (inbox / name / "a.wav").write_bytes(b"a")
        ready.scan(inbox, at)
    assert names(ready.scan(inbox, 10).ready) == ["b-first"]
    assert names(ready.scan(inbox, 15).ready) == ["b-first", "a-second"]


def test_loose_entries_are_reported_once_and_links_are_not_jobs(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "loose.mp4").write_bytes(b"v")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", inbox / "linked-folder")
    ready = tracker()
    assert ready.scan(inbox, 0).new_loose_entries == ["linked-folder", "loose.mp4"]
    assert ready.scan(inbox, 1).new_loose_entries == []
    assert ready.scan(inbox, 100).ready == []



def test_dot_named_job_folders_are_ignored_and_reported_once(tmp_path):
    inbox = tmp_path / "inbox"
    for name in (".hidden-job", ".stfolder", ".Trash-1000", ".recycle", ".job.heygemd-0badc0de-1-abcdef.tmp"):
        (inbox / name).mkdir(parents=True)
        (inbox / name / "a.wav").write_bytes(b"a")
    (inbox / ".DS_Store").write_bytes(b"")
    ready = tracker()
    first = ready.scan(inbox, 0)
    assert first.new_hidden_folders == [".hidden-job"] and first.new_loose_entries == []
    assert ready.scan(inbox, 1).new_hidden_folders == []
    later = ready.scan(inbox, 100)
    assert later.ready == [] and later.waiting == [] and later.new_hidden_folders == []
    (inbox / ".hidden-job").rename(inbox / "hidden-job")  # renamed by the person: now a job
    (inbox / ".second").mkdir()
    assert ready.scan(inbox, 101).new_hidden_folders == [".second"]
    assert names(ready.scan(inbox, 112).ready) == ["hidden-job"]

def test_a_missing_inbox_concludes_nothing(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "job").mkdir(parents=True)
    (inbox / "job" / "a.wav").write_bytes(b"a")
    ready = tracker()
    ready.scan(inbox, 0)
    os.rename(inbox, tmp_path / "unmounted")
    scan = ready.scan(inbox, 5)
    assert scan.inbox_missing and scan.ready == [] and scan.abandoned == []
    os.rename(tmp_path / "unmounted", inbox)
    assert names(ready.scan(inbox, 11).ready) == ["job"]
