"""Claiming a folder and placing results: each step is one rename, recorded first, and safe to repeat."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import pytest
from record_keeper import keeper

from heygemd.codes import ErrorCode, Failure
from heygemd.daemon.claim import RESULTS_FOLDER, ClaimError, WorkArea, claim
from heygemd.daemon.config import AfterSuccess, PathsConfig
from heygemd.daemon.journal import JobRecord, Journal, Phase, VideoRecord
from heygemd.daemon.outputs import (
    Destinations,
    dispose_inputs,
    keep_only,
    publish_outbox_folder,
    quarantine_failed_videos,
    quarantine_whole_job,
    write_zip_bundle,
)
from heygemd.daemon.reports import ErrorReport, VideoStatus


@pytest.fixture
def dest(tmp_path: Path) -> Destinations:
    paths = PathsConfig(
        inbox=tmp_path / "inbox",
        outbox=tmp_path / "outbox",
        quarantine=tmp_path / "quarantine",
        work=tmp_path / "work",
        archive=tmp_path / "archive",
        state=tmp_path / "state",
    )
    destinations = Destinations(paths, WorkArea(paths.work))
    destinations.ensure()
    paths.inbox.mkdir()
    return destinations


def listing(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def dropped(dest: Destinations, name: str, files: dict[str, bytes]) -> Path:
    folder = dest.paths.inbox / name
    folder.mkdir()
    for file_name, content in files.items():
        (folder / file_name).write_bytes(content)
    return folder


# ---------------------------------------------------------------------------- claim


def test_a_claim_moves_the_folder_whole_and_journals_it(dest):
    journal = Journal(dest.paths.state)
    dropped(dest, "job", {"a.wav": b"a", "v.mp4": b"v"})
    record = claim(dest.paths.inbox, "job", dest.work, keeper(journal))
    assert record is not None and record.phase is Phase.CLAIMED
    assert listing(dest.paths.inbox) == [] and listing(dest.work.input_dir(record.job_id)) == ["a.wav", "v.mp4"]
    assert [saved.job_id for saved in journal.records()] == [record.job_id]
    assert dest.work.results_dir(record) == dest.work.job_dir(record.job_id) / RESULTS_FOLDER


def test_a_folder_gone_before_the_claim_is_no_job_and_leaves_nothing(dest):
    journal = Journal(dest.paths.state)
    assert claim(dest.paths.inbox, "vanished", dest.work, keeper(journal)) is None
    assert journal.records() == [] and listing(dest.work.root) == []


def test_a_work_folder_on_another_filesystem_is_a_clear_claim_error(dest):
    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(dest.paths.inbox).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temp folder")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        work = WorkArea(Path(elsewhere) / "work")
        dropped(dest, "job", {"a.wav": b"a"})
        with pytest.raises(ClaimError, match="not on the inbox's filesystem"):
            claim(dest.paths.inbox, "job", work, keeper(Journal(dest.paths.state)))
        assert listing(dest.paths.inbox / "job") == ["a.wav"], "the folder stays where it was"


# ---------------------------------------------------------------------------- outputs


def claimed_record(dest: Destinations, name: str, files: dict[str, bytes], videos: list[VideoRecord]) -> JobRecord:
    record = JobRecord(
        job_id=f"id-{name}",
        name=name,
        phase=Phase.PUBLISHING,
        results_dir="output-x",
        audio="a.wav",
        videos=videos,
        output_folder=name,
    )
    input_dir = dest.work.input_dir(record.job_id)
    input_dir.mkdir(parents=True)
    for file_name, content in files.items():
        (input_dir / file_name).write_bytes(content)
    dest.work.results_dir(record).mkdir()
    return record


def test_publishing_never_overwrites_and_a_repeat_after_a_restart_changes_nothing(dest):
    journal = Journal(dest.paths.state)
    (dest.paths.outbox / "job").mkdir()  # a previous job of the same name
    record = claimed_record(dest, "job", {"a.wav": b"a"}, [])
    (dest.work.results_dir(record) / "v.mp4").write_bytes(b"video")
    target = publish_outbox_folder(record, dest, keeper(journal))
    assert target.name == "job (2)" and listing(target) == ["v.mp4"]
    assert journal.records()[0].outbox_path == target, "recorded before the rename"
    assert publish_outbox_folder(record, dest, keeper(journal)) == target and listing(dest.paths.outbox) == [
        "job",
        "job (2)",
    ]


def test_the_zip_bundle_holds_the_folder_and_is_written_once(dest):
    journal = Journal(dest.paths.state)
    record = claimed_record(dest, "zipped", {"a.wav": b"a"}, [])
    (dest.work.results_dir(record) / "v.mp4").write_bytes(b"video")
    publish_outbox_folder(record, dest, keeper(journal))
    bundle = write_zip_bundle(record, dest, keeper(journal))
    with zipfile.ZipFile(bundle) as archive:
        assert archive.namelist() == ["zipped/v.mp4"] and archive.read("zipped/v.mp4") == b"video"
    assert write_zip_bundle(record, dest, keeper(journal)) == bundle
    assert listing(dest.paths.outbox) == ["zipped", "zipped.zip"], "no staging file left"


def test_a_whole_job_goes_to_quarantine_untouched_with_its_error(dest):
    journal = Journal(dest.paths.state)
    record = claimed_record(dest, "bad", {"a.wav": b"a", "v.mp4": b"v"}, [])
    failure = Failure(code=ErrorCode.JOB_NO_TEMPLATE, reason="no template")
    target = quarantine_whole_job(record, ErrorReport.of("bad", record.job_id, failure), dest, keeper(journal))
    assert listing(target) == ["a.wav", "error.json", "v.mp4"]
    assert (target / "a.wav").read_bytes() == b"a" and not dest.work.results_dir(record).exists()
    assert ErrorReport.model_validate_json((target / "error.json").read_text()).code is ErrorCode.JOB_NO_TEMPLATE


def test_failed_templates_go_to_quarantine_with_a_copy_of_the_audio(dest):
    journal = Journal(dest.paths.state)
    failure = Failure(code=ErrorCode.FACE_NOT_FOUND, reason="w.mp4: no face")
    videos = [
        VideoRecord(template="v.mp4", output_stem="v", status=VideoStatus.OK),
        VideoRecord(template="w.mp4", output_stem="w", status=VideoStatus.FAILED, failure=failure),
    ]
    record = claimed_record(dest, "partial", {"a.wav": b"a", "v.mp4": b"v", "w.mp4": b"w"}, videos)
    target = quarantine_failed_videos(record, dest, keeper(journal))
    assert target is not None and listing(target) == ["a.wav", "error.json", "w.mp4"]
    assert listing(dest.work.input_dir(record.job_id)) == ["a.wav", "v.mp4"], "the audio is copied, not moved"
    error = ErrorReport.model_validate_json((target / "error.json").read_text())
    assert [(video.template, video.code) for video in error.failed_videos] == [("w.mp4", ErrorCode.FACE_NOT_FOUND)]
    assert quarantine_failed_videos(record, dest, keeper(journal)) == target, "a repeat finds it done"


@pytest.mark.parametrize("after", [AfterSuccess.ARCHIVE, AfterSuccess.DELETE])
def test_inputs_are_archived_or_deleted_once(dest, after):
    journal = Journal(dest.paths.state)
    record = claimed_record(dest, "done", {"a.wav": b"a"}, [])
    dispose_inputs(record, after, dest, keeper(journal))
    assert record.inputs_disposed and not dest.work.input_dir(record.job_id).exists()
    assert listing(dest.paths.archive) == (["done"] if after is AfterSuccess.ARCHIVE else [])
    dispose_inputs(record, after, dest, keeper(journal))
    assert listing(dest.paths.archive) == (["done"] if after is AfterSuccess.ARCHIVE else [])


def test_keep_only_removes_what_a_killed_render_left(tmp_path):
    (tmp_path / "v.mp4").write_bytes(b"v")
    (tmp_path / ".v.mp4.heygemd-x-1-abc.tmp").write_bytes(b"half")
    (tmp_path / "stray").mkdir()
    keep_only(tmp_path, {"v.mp4"})
    assert listing(tmp_path) == ["v.mp4"]
