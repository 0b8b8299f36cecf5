"""Re-run a finished job from the page: its inputs again, with the same options, as a new job in the inbox.

Where the inputs still are:
- a failed or cancelled job: the whole job folder is in quarantine (job.toml included);
- a partly done job: its failed templates and a copy of the audio are in quarantine, the rest (job.toml
  too) in the archive: the re-run renders the failed templates again, with the job's options;
- a job done in full: its inputs are in the archive while ``outputs.after_success = "archive"`` (the
  default); with ``"delete"``, or once someone cleared the archive, nothing is left to re-run (409).

The inputs are copied (the quarantine and archive stay as they are) into a staging folder, marked as a
complete web upload, and renamed into the inbox under the job's name, or "name (2)" when it is taken.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from heygemd.daemon.contract import FileKind, kind_of
from heygemd.uploadmark import write_upload_mark
from heygemd.web.actions import find_or_404
from heygemd.web.errors import WebError
from heygemd.web.settings import QUARANTINE, WebSettings
from heygemd.web.upload import Upload, discard, new_staging, publish
from heygemd.web.views import JobFinder, JobPhase, JobView, real_folder, regular_files, shown_folder

INPUT_KINDS = frozenset({FileKind.AUDIO, FileKind.VIDEO, FileKind.STILL, FileKind.SCRIPT, FileKind.JOB_FILE})
SPOKEN_KINDS = frozenset({FileKind.AUDIO, FileKind.SCRIPT})
PICTURE_KINDS = frozenset({FileKind.VIDEO, FileKind.STILL})


def inputs_of(settings: WebSettings, job: JobView) -> dict[str, Path]:
    """The job's input files by name: those in its quarantine folder first, then those in its archive folder."""
    folders = []
    if job.quarantine_folder:
        folders.append(real_folder(settings.area_folder(QUARANTINE), job.quarantine_folder))
    if job.archive_folder:  # its own archive folder: "name (2)" when an older job of that name was archived first
        folders.append(shown_folder(settings.paths.archive, job.archive_folder))
    found: dict[str, Path] = {}
    for folder in folders:
        if folder is None:
            continue
        for item in regular_files(folder):
            if kind_of(item.name) in INPUT_KINDS:
                found.setdefault(item.name, Path(item.path))
    return found


def rerun_job(settings: WebSettings, name: str) -> str:
    """Copy a finished job's inputs into the inbox as a new job; returns its name."""
    job = find_or_404(JobFinder(settings), name)
    if job.phase is not JobPhase.DONE:
        raise WebError(409, "error.not_finished", "The job has not finished: cancel it first.")
    inputs = inputs_of(settings, job)
    kinds = {kind_of(file_name) for file_name in inputs}
    if not (kinds & SPOKEN_KINDS and kinds & PICTURE_KINDS):
        raise WebError(
            409,
            "error.inputs_gone",
            f'The inputs of "{name}" are no longer there: a job done in full keeps them in the archive only while '
            'outputs.after_success = "archive", and the archive or quarantine folder may have been cleared.',
            name=name,
        )
    staging = new_staging(settings)
    try:
        for file_name, source in sorted(inputs.items()):
            shutil.copyfile(source, staging / file_name)
            os.utime(staging / file_name)
        write_upload_mark(staging)
        return publish(settings, Upload(staging), job.id)
    except BaseException:
        discard(staging)
        raise
