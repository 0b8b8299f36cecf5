"""Claiming a job: one atomic rename of the folder out of the inbox into the shared work area.

Work area layout, one folder per claimed job::

    work/<job-id>/input/                the job folder exactly as it was dropped
    work/<job-id>/output/               finished videos, moved to the outbox when complete
    work/<job-id>/failed/               failed templates being gathered for quarantine
    work/<job-id>/tasks/<task-id>/      cluster mode: a worker's video before the coordinator adopts it

The claiming service's journal (its state folder) is the only record of the job: that service, restarted,
finishes it. Jobs claimed by an older heygemd may have ``owner.json``, ``lease-*``/``record-*`` files and
``output-<owner>/``; their records name that folder and they are resumed as before.
"""

from __future__ import annotations

import errno
import secrets
from dataclasses import dataclass
from pathlib import Path

from heygemd.atomic import fsync_directory
from heygemd.daemon.fsutil import remove_tree, rename_no_replace
from heygemd.daemon.journal import JobRecord
from heygemd.daemon.lifecycle import Lifecycle
from heygemd.daemon.reports import utc_now

OWNER_FILE = "owner.json"  # older layout, read to recognise this service's jobs without a journal record
INPUT_FOLDER = "input"
FAILED_FOLDER = "failed"
RESULTS_FOLDER = "output"


class ClaimError(Exception):
    """The folder could not be claimed for a reason the operator must fix (permissions, filesystems)."""


@dataclass(frozen=True)
class WorkArea:
    root: Path

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def input_dir(self, job_id: str) -> Path:
        return self.root / job_id / INPUT_FOLDER

    def results_dir(self, record: JobRecord) -> Path:
        return self.root / record.job_id / record.results_dir

    def failed_dir(self, job_id: str) -> Path:
        return self.root / job_id / FAILED_FOLDER


def new_job_id() -> str:
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def claim(inbox: Path, name: str, work: WorkArea, lifecycle: Lifecycle) -> JobRecord | None:
    """Move ``inbox/name`` into the work area. None if it is gone (taken by someone else or removed)."""
    record = lifecycle.claiming(new_job_id(), name, RESULTS_FOLDER)
    job_dir = work.job_dir(record.job_id)
    try:
        job_dir.mkdir(parents=True)
        rename_no_replace(inbox / name, work.input_dir(record.job_id))
    except FileNotFoundError:
        remove_tree(job_dir)
        lifecycle.not_claimed(record)
        return None
    except OSError as err:
        remove_tree(job_dir)
        lifecycle.not_claimed(record)
        if err.errno == errno.EXDEV:
            raise ClaimError(
                f"cannot claim {name!r}: the work folder {work.root} is not on the inbox's filesystem; "
                "set paths.work to a folder on the same share as paths.inbox"
            ) from None
        raise ClaimError(f"cannot claim {name!r}: {err.strerror} ({err.filename})") from None
    fsync_directory(inbox)
    lifecycle.claimed(record)
    return record
