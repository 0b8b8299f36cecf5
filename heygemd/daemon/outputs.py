"""Where results and inputs go: outbox, quarantine, archive, optional zip bundle.

Every step records its destination in the journal before moving anything, and checks on
entry whether it already happened, so a restart can repeat any of them safely. Every folder
appears in the outbox or quarantine whole: built in the work area, then renamed.
"""

from __future__ import annotations

import errno
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from heygemd.atomic import atomic_output, fsync_directory, fsync_file, write_atomic
from heygemd.codes import ErrorCode, Failure
from heygemd.daemon.claim import WorkArea
from heygemd.daemon.config import AfterSuccess, PathsConfig
from heygemd.daemon.fsutil import (
    free_name,
    move_without_overwrite,
    remove_tree,
    rename_no_replace,
)
from heygemd.daemon.journal import JobRecord
from heygemd.daemon.lifecycle import Lifecycle, Place, recorded_place
from heygemd.daemon.reports import ErrorReport, FailedVideo, VideoStatus
from heygemd.names import NAME_MAX_BYTES, temporary_name
from heygemd.resultfiles import ERROR_REPORT, SIDECAR_SUFFIX, ZIP_SUFFIX

# An outbox folder's name leaves room for its zip bundle's, which is the same plus ".zip".
OUTBOX_NAME_MAX_BYTES = NAME_MAX_BYTES - len(ZIP_SUFFIX)


@dataclass(frozen=True)
class Destinations:
    paths: PathsConfig
    work: WorkArea

    def ensure(self) -> None:
        for folder in (self.paths.outbox, self.paths.quarantine, self.paths.archive, self.work.root):
            folder.mkdir(parents=True, exist_ok=True)


def _move_recorded(
    source: Path,
    directory: Path,
    name: str,
    record: JobRecord,
    place: Place,
    lifecycle: Lifecycle,
    *,
    suffix: str = "",
    max_bytes: int = NAME_MAX_BYTES,
) -> Path:
    """Move ``source`` into ``directory`` under a free name, recording the name first. Safe to repeat."""
    recorded = recorded_place(record, place)
    if recorded is not None and not os.path.lexists(source) and os.path.lexists(recorded):
        return recorded  # done before a restart
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        target = free_name(directory, name, suffix, max_bytes)
        lifecycle.moving_to(record, place, target)
        try:
            rename_no_replace(source, target)
            fsync_directory(directory)
            return target
        except FileExistsError:
            continue
        except OSError as err:
            if err.errno != errno.EXDEV:  # the destination is on another filesystem
                raise
            target = move_without_overwrite(source, directory, name, suffix, max_bytes)
            lifecycle.moving_to(record, place, target)
            return target


def quarantine_whole_job(record: JobRecord, error: ErrorReport, dest: Destinations, lifecycle: Lifecycle) -> Path:
    """Move the job folder, untouched except for an added error.json, to quarantine/<job>/."""
    input_dir = dest.work.input_dir(record.job_id)
    if os.path.lexists(input_dir):
        write_atomic(input_dir / ERROR_REPORT, error.model_dump_json(indent=2) + "\n")
    target = _move_recorded(input_dir, dest.paths.quarantine, record.name, record, Place.QUARANTINE, lifecycle)
    remove_tree(dest.work.results_dir(record))
    return target


def publish_outbox_folder(record: JobRecord, dest: Destinations, lifecycle: Lifecycle) -> Path:
    """Rename the finished results folder into the outbox (suffixing the name if it is taken).

    The results folder is one path per job and is never made again once gone, so however many
    services try this rename, one succeeds: a job reaches the outbox once.
    """
    output_dir = dest.work.results_dir(record)
    name = record.output_folder or record.name
    return _move_recorded(
        output_dir, dest.paths.outbox, name, record, Place.OUTBOX, lifecycle, max_bytes=OUTBOX_NAME_MAX_BYTES
    )


def keep_only(folder: Path, names: set[str]) -> None:
    """Remove anything else from a results folder (e.g. a temporary file left by a killed render).

    A name may lie in a subfolder (``script-a/front.mp4``: a job with several audio files or scripts).
    """
    for entry in folder.iterdir():
        inside = {name.split("/", 1)[1] for name in names if name.startswith(f"{entry.name}/")}
        if inside and entry.is_dir() and not entry.is_symlink():
            keep_only(entry, inside)
        elif entry.name not in names:
            remove_tree(entry)


def write_zip_bundle(record: JobRecord, dest: Destinations, lifecycle: Lifecycle) -> Path:
    """outbox/<folder>.zip beside the folder, holding the same files under the folder's name."""
    assert record.outbox_path is not None
    if record.zip_path is not None and record.zip_path.exists():
        return record.zip_path
    folder = record.outbox_path
    staging = dest.paths.outbox / temporary_name(f"{folder.name}{ZIP_SUFFIX}")
    try:
        with zipfile.ZipFile(staging, "w", compression=zipfile.ZIP_STORED) as bundle:
            for item in sorted(folder.rglob("*")):  # subfolders: a job with several audio files or scripts
                if item.is_file() and not item.is_symlink():
                    compression = zipfile.ZIP_DEFLATED if item.suffix == SIDECAR_SUFFIX else zipfile.ZIP_STORED
                    bundle.write(item, f"{folder.name}/{item.relative_to(folder).as_posix()}", compress_type=compression)
        fsync_file(staging)
        return _move_recorded(staging, dest.paths.outbox, folder.name, record, Place.ZIP, lifecycle, suffix=ZIP_SUFFIX)
    finally:
        staging.unlink(missing_ok=True)


def quarantine_failed_videos(record: JobRecord, dest: Destinations, lifecycle: Lifecycle) -> Path | None:
    """Gather the failed templates (moved), a copy of the audio and error.json, then rename into quarantine."""
    failed = [video for video in record.videos if video.status is VideoStatus.FAILED]
    if not failed:
        return None
    staging = dest.work.failed_dir(record.job_id)
    if record.quarantine_path is not None and not staging.exists():
        return record.quarantine_path
    staging.mkdir(parents=True, exist_ok=True)
    input_dir = dest.work.input_dir(record.job_id)
    for video in failed:
        if Path(video.template).is_absolute():  # a presenter library's template: never moved by a job
            continue
        source = input_dir / video.template
        if os.path.lexists(source) and not os.path.lexists(staging / video.template):
            os.rename(source, staging / video.template)
    templates = {video.template for video in record.videos}
    spoken = [item.name for item in record.inputs if item.name not in templates]  # each audio of a job with several
    for audio in spoken or ([record.audio] if record.audio else []):
        if not (staging / audio).exists() and (input_dir / audio).exists():
            with atomic_output(staging / audio) as partial:
                shutil.copy2(input_dir / audio, partial)
    failures = [video.failure for video in failed if video.failure is not None]
    summary = Failure(
        code=failures[0].code if failures else ErrorCode.INTERNAL,
        reason=f"{len(failed)} of {len(record.videos)} template videos could not be rendered; "
        "the others are in the outbox. The failed templates and a copy of the audio are here.",
    )
    report = ErrorReport.of(
        record.name,
        record.job_id,
        summary,
        failed_videos=[
            FailedVideo(template=video.template, reason=failure.reason, code=failure.code)
            for video, failure in zip(failed, failures, strict=True)
        ],
        outbox_folder=str(record.outbox_path) if record.outbox_path else None,
    )
    write_atomic(staging / ERROR_REPORT, report.model_dump_json(indent=2) + "\n")
    return _move_recorded(staging, dest.paths.quarantine, record.name, record, Place.QUARANTINE, lifecycle)


def note_outbox_folder(record: JobRecord) -> None:
    """A partly done job: its quarantine folder's error.json names the outbox folder once the results are there.

    The failed templates are quarantined before the results are published, so the outbox folder's name (it may
    get a suffix) is known only after: it is written then. Safe to repeat after a crash.
    """
    if record.quarantine_path is None or record.outbox_path is None:
        return
    path = record.quarantine_path / ERROR_REPORT
    try:
        report = ErrorReport.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # moved away or edited by a person: theirs now
    if report.outbox_folder == str(record.outbox_path):
        return
    report.outbox_folder = str(record.outbox_path)
    write_atomic(path, report.model_dump_json(indent=2) + "\n")


def dispose_inputs(record: JobRecord, after_success: AfterSuccess, dest: Destinations, lifecycle: Lifecycle) -> None:
    """Archive or delete what is left of the job folder after its results were published."""
    if record.inputs_disposed:
        return
    input_dir = dest.work.input_dir(record.job_id)
    if after_success is AfterSuccess.ARCHIVE:
        if os.path.lexists(input_dir) or record.archive_path is not None:
            archived = _move_recorded(input_dir, dest.paths.archive, record.name, record, Place.ARCHIVE, lifecycle)
            _stamp_arrival(archived)
    else:
        remove_tree(input_dir)
    lifecycle.inputs_disposed(record)


def _stamp_arrival(entry: Path) -> None:
    """Set the modification time to now: retention ages an entry by it, and a rename keeps the upload's."""
    try:
        os.utime(entry, follow_symlinks=False)
    except FileNotFoundError:
        pass  # removed meanwhile by a person: nothing to age
