"""Readiness on real folders, with the clock passed in: settle, open files, marker and manifest, abandon, loose files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from as_user import give_to_unprivileged, run_unprivileged, shared_temp_dir

from heygemd.codes import ErrorCode
from heygemd.daemon.config import Readiness
from heygemd.daemon.manifest import ManifestEntry, parse_manifest
from heygemd.daemon.openfiles import OpenFileProbe
from heygemd.daemon.readiness import CLOSED_QUIET_SECONDS, ReadinessTracker, WaitKind


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
    assert {item.name: item.kind for item in ready.scan(inbox, 1).arriving}["zero"] is WaitKind.UPLOADING
    scan = ready.scan(inbox, 50)
    assert scan.ready == [] and sorted(scan.waiting) == ["empty", "sync", "zero"]
    assert {item.name: item.kind for item in scan.arriving} == {
        "empty": WaitKind.EMPTY,
        "sync": WaitKind.UPLOADING,
        "zero": WaitKind.EMPTY_FILES,  # settled and still empty: not shown as an upload in progress
    }
    zero = next(item for item in scan.arriving if item.name == "zero")
    assert '"v.mp4" empty (0 bytes)' in zero.reason and "upload" not in zero.reason
    abandoned = {item.name: item.failure for item in ready.scan(inbox, 101).abandoned}
    assert {name: failure.code for name, failure in abandoned.items()} == {
        "empty": ErrorCode.JOB_EMPTY,
        "sync": ErrorCode.INPUT_INCOMPLETE,
        "zero": ErrorCode.INPUT_INCOMPLETE,
    }
    assert "temporary" in abandoned["sync"].reason and '"v.mp4" (empty, 0 bytes)' in abandoned["zero"].reason


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


# ---------------------------------------------------------------------------- open for writing


def kinds(scan) -> dict[str, WaitKind]:
    return {folder.name: folder.kind for folder in scan.arriving}


def job_with(inbox: Path, name: str = "job", files: dict[str, bytes] | None = None) -> Path:
    folder = inbox / name
    folder.mkdir(parents=True)
    for file_name, content in (files or {"a.wav": b"a", "v.mp4": b"v" * 10}).items():
        (folder / file_name).write_bytes(content)
    return folder


def test_a_file_open_for_writing_keeps_the_folder_waiting_whatever_its_settle_state(tmp_path):
    inbox = tmp_path / "inbox"
    job = job_with(inbox)
    ready = tracker()
    with open(job / "v.mp4", "ab"):  # the client paused with its handle open
        for now in (0, 10, 50, 500):
            scan = ready.scan(inbox, now)
            assert scan.ready == [] and kinds(scan) == {"job": WaitKind.OPEN_FOR_WRITING}
        assert scan.arriving[0].reason == '"v.mp4" still open for writing'
        assert scan.abandoned == [] and ready.scan(inbox, 5000).abandoned == []  # a live writer is never abandoned
    # closed: the settle clock starts again from the last time it was seen open
    assert kinds(ready.scan(inbox, 5001)) == {"job": WaitKind.SETTLING}
    assert ready.scan(inbox, 5009).ready == []
    assert names(ready.scan(inbox, 5010).ready) == ["job"]


def test_full_size_written_first_and_held_open_is_not_ready(tmp_path):
    inbox = tmp_path / "inbox"
    job = job_with(inbox, files={"a.wav": b"a"})
    ready = tracker()
    with open(job / "v.mp4", "wb") as handle:
        handle.truncate(4_000_000)  # the final size, no content yet
        handle.flush()
        assert ready.scan(inbox, 0).ready == [] and ready.scan(inbox, 100).ready == []
    ready.scan(inbox, 101)
    assert names(ready.scan(inbox, 111).ready) == ["job"]


def test_on_a_network_mount_the_settle_window_is_all_there_is(tmp_path):
    inbox = tmp_path / "inbox"
    job = job_with(inbox)
    ready = ReadinessTracker(
        readiness=Readiness.SETTLE,
        marker_name="READY",
        settle_seconds=10,
        abandon_after_seconds=100,
        probe=OpenFileProbe(network=True),
    )
    with open(job / "v.mp4", "ab"):
        ready.scan(inbox, 0)
        assert names(ready.scan(inbox, 10).ready) == ["job"]  # the documented limit: open handles are invisible there


# ---------------------------------------------------------------------------- marker mode


def test_a_marker_that_arrived_first_waits_for_the_files_still_being_written(tmp_path):
    inbox = tmp_path / "inbox"
    job = job_with(inbox, files={"READY": b"", "a.wav": b"a"})
    ready = tracker(Readiness.MARKER)
    with open(job / "v.mp4", "wb") as handle:
        handle.write(b"v" * 1000)
        for now in (0, 20, 200):
            assert kinds(ready.scan(inbox, now)) == {"job": WaitKind.OPEN_FOR_WRITING}
    # closed now: counts without its settle window, once the folder was quiet a moment (the next file may follow)
    assert kinds(ready.scan(inbox, 201)) == {"job": WaitKind.SETTLING}
    assert names(ready.scan(inbox, 201 + CLOSED_QUIET_SECONDS).ready) == ["job"]


def test_a_marker_written_last_counts_at_once(tmp_path):
    inbox = tmp_path / "inbox"
    job = job_with(inbox)
    ready = tracker(Readiness.MARKER)
    assert kinds(ready.scan(inbox, 0)) == {"job": WaitKind.NO_MARKER}
    (job / "READY").write_bytes(b"done\n")  # free text: no manifest
    assert names(ready.scan(inbox, 1).ready) == ["job"]


def test_marker_mode_without_a_probe_waits_for_every_file_to_settle(tmp_path):
    inbox = tmp_path / "inbox"
    job = job_with(inbox, files={"READY": b"", "a.wav": b"a"})
    ready = ReadinessTracker(
        readiness=Readiness.MARKER,
        marker_name="READY",
        settle_seconds=10,
        abandon_after_seconds=100,
        probe=OpenFileProbe(network=True),
    )
    ready.scan(inbox, 0)
    (job / "v.mp4").write_bytes(b"v" * 10)
    assert kinds(ready.scan(inbox, 5)) == {"job": WaitKind.MARKER_EARLY}
    assert ready.scan(inbox, 14).ready == []
    assert names(ready.scan(inbox, 15).ready) == ["job"]


def test_temporary_files_block_marker_mode_too(tmp_path):
    inbox = tmp_path / "inbox"
    job_with(inbox, files={"a.wav": b"a", "v.mp4.part": b"v", "READY": b""})
    ready = tracker(Readiness.MARKER)
    assert kinds(ready.scan(inbox, 0)) == {"job": WaitKind.UPLOADING}
    assert [item.failure.code for item in ready.scan(inbox, 100).abandoned] == [ErrorCode.INPUT_INCOMPLETE]


# ---------------------------------------------------------------------------- the manifest in the marker


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_manifest_of_sizes_is_ready_once_every_size_matches(tmp_path):
    inbox = tmp_path / "inbox"
    job = job_with(inbox, files={"READY": b"# sizes\n1 a.wav\n10  v.mp4\n\n", "a.wav": b"a"})
    ready = tracker(Readiness.MARKER)
    ready.scan(inbox, 0)
    scan = ready.scan(inbox, 1)
    assert kinds(scan) == {"job": WaitKind.MANIFEST_MISMATCH} and '"v.mp4" is missing' in scan.arriving[0].reason
    (job / "v.mp4").write_bytes(b"v" * 4)
    assert kinds(ready.scan(inbox, 2)) == {"job": WaitKind.MANIFEST_MISMATCH}
    with open(job / "v.mp4", "ab") as handle:
        handle.write(b"v" * 6)
    ready.scan(inbox, 3)
    assert names(ready.scan(inbox, 3 + CLOSED_QUIET_SECONDS).ready) == ["job"]


def test_a_manifest_checksum_proves_a_file_complete(tmp_path):
    inbox = tmp_path / "inbox"
    video = b"v" * 100
    manifest = f"{sha(b'a')} 1 a.wav\n{sha(video).upper()}  *V.MP4\n"  # sha256sum style, and the case differs
    job = job_with(inbox, files={"READY": manifest.encode(), "a.wav": b"a", "v.mp4": b"x" * 100})
    ready = tracker(Readiness.MARKER)
    ready.scan(inbox, 0)
    scan = ready.scan(inbox, 50)
    assert kinds(scan) == {"job": WaitKind.MANIFEST_MISMATCH} and "sha256" in scan.arriving[0].reason
    (job / "v.mp4").write_bytes(video)
    assert ready.scan(inbox, 51).ready == []  # quiet a moment: the marker did not come last
    assert names(ready.scan(inbox, 51 + CLOSED_QUIET_SECONDS).ready) == ["job"]


def test_a_sha256sum_manifest_of_names_that_begin_with_digits_and_a_space_makes_the_folder_ready(tmp_path):
    inbox = tmp_path / "inbox"
    intro, voice = b"i" * 50, b"a" * 20
    manifest = f"{sha(intro)}  01 intro.mp4\n{sha(voice)}  2 voice.wav\n"  # as `sha256sum * > READY` writes it
    job_with(inbox, files={"01 intro.mp4": intro, "2 voice.wav": voice, "READY": manifest.encode()})
    ready = tracker(Readiness.MARKER)
    ready.scan(inbox, 0)
    assert names(ready.scan(inbox, 1 + CLOSED_QUIET_SECONDS).ready) == ["job"]


def test_a_mismatch_that_lasts_goes_to_quarantine_naming_the_file(tmp_path):
    inbox = tmp_path / "inbox"
    job_with(inbox, files={"READY": b"2000 voice.wav\n12 v.mp4\nnot a line\n", "voice.wav": b"a" * 1000, "v.mp4": b"v" * 12})
    ready = tracker(Readiness.MARKER)
    ready.scan(inbox, 0)
    assert ready.scan(inbox, 99).abandoned == []
    abandoned = ready.scan(inbox, 100).abandoned
    assert [item.failure.code for item in abandoned] == [ErrorCode.INPUT_MANIFEST_MISMATCH]
    failure = abandoned[0].failure
    assert '"voice.wav" is 1000 bytes; the marker lists 2000' in failure.reason
    assert any("line 3" in detail for detail in failure.details)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("ok\n", []),
        ("2024-05-01 done", []),
        ("12 my voice.wav\n", [ManifestEntry("my voice.wav", 12, None)]),
        ("1,234 ./v.mp4\r\n", [ManifestEntry("v.mp4", 1234, None)]),
        (f"{'A' * 64} 7 sub/v.mp4", [ManifestEntry("sub/v.mp4", 7, "a" * 64)]),
        (f"{'b' * 64} *v.mp4", [ManifestEntry("v.mp4", None, "b" * 64)]),
        ("\ufeff# comment\n5 a.wav\n", [ManifestEntry("a.wav", 5, None)]),
        (f"{'c' * 64}  01 intro.mp4", [ManifestEntry("01 intro.mp4", None, "c" * 64)]),  # sha256sum: a name, not a size
        (f"{'c' * 64} *2 takes.wav", [ManifestEntry("2 takes.wav", None, "c" * 64)]),
        (f"{'c' * 64} 01 intro.mp4", [ManifestEntry("intro.mp4", 1, "c" * 64)]),  # one space: heygemd's own form
    ],
)
def test_manifest_lines(text, expected):
    assert list(parse_manifest(text).entries) == expected


def test_manifest_lines_that_escape_the_folder_are_not_entries():
    manifest = parse_manifest("5 a.wav\n6 ../etc/passwd\n7 /abs.wav\n")
    assert [entry.name for entry in manifest.entries] == ["a.wav"] and [n for n, _ in manifest.bad_lines] == [2, 3]


# ---------------------------------------------------------------------------- folders the service may not list


def test_an_unlistable_folder_or_unreadable_marker_goes_to_quarantine_after_the_abandon_time():
    # As a service without root: root would list anything.
    folder = shared_temp_dir()
    try:
        inbox = folder / "inbox"
        job = job_with(inbox)
        (job / "private").mkdir()
        locked = job_with(inbox, "locked")
        (job / "private").chmod(0)
        locked.chmod(0)
        secret_marker = job_with(folder / "marked-inbox", "secret", files={"a.wav": b"a", "READY": b"1 a.wav\n"})
        give_to_unprivileged(folder)
        (secret_marker / "READY").chmod(0)
        code = textwrap.dedent(
            """
            import json, sys
            from pathlib import Path
            from heygemd.daemon.config import Readiness
            from heygemd.daemon.readiness import ReadinessTracker
            tracker = ReadinessTracker(readiness=Readiness.SETTLE, marker_name="READY", settle_seconds=10,
                                       abandon_after_seconds=100)
            inbox = Path(sys.argv[1])
            early = tracker.scan(inbox, 0)
            tracker.scan(inbox, 50)
            late = tracker.scan(inbox, 100)
            marker = ReadinessTracker(readiness=Readiness.MARKER, marker_name="READY", settle_seconds=10,
                                      abandon_after_seconds=100)
            marked = Path(sys.argv[2])
            marker_early = [marker.scan(marked, now) for now in (0, 50)][-1]
            marker_late = marker.scan(marked, 100)
            print(json.dumps({
                "waiting": {item.name: [item.kind.value, item.reason] for item in early.arriving},
                "ready": late.waiting + [item.name for item in late.ready],
                "abandoned": {item.name: [item.failure.code.value, item.failure.details] for item in late.abandoned},
                "marker_waiting": [item.kind.value for item in marker_early.arriving],
                "marker_abandoned": [[item.failure.code.value, item.failure.details] for item in marker_late.abandoned],
            }))
            """
        )
        seen = run_unprivileged(code, str(inbox), str(folder / "marked-inbox"))
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(folder)], check=True)
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    assert seen["waiting"]["job"] == ["unreadable", 'the service may not list "private" (permission denied)']
    assert seen["waiting"]["locked"][0] == "unreadable"
    assert seen["ready"] == []
    assert seen["abandoned"] == {
        "job": ["input.unreadable", ["cannot be listed: private"]],
        "locked": ["input.unreadable", ["cannot be listed: locked"]],
    }
    assert seen["marker_waiting"] == ["unreadable"]
    assert seen["marker_abandoned"] == [["input.unreadable", ["cannot be read: READY"]]]
