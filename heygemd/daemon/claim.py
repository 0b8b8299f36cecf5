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
from datetime import UTC, datetime
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


def _arrival(folder: Path, seen_at: datetime | None) -> datetime | None:
    """The earlier of ``seen_at`` and the folder's last change (ctime: a copy cannot set it back; a folder found
    at start-up arrived when its last entry was added, or when it was moved in)."""
    changes = [seen_at.timestamp()] if seen_at is not None else []
    try:
        changes.append(folder.stat().st_ctime)
    except OSError:
        pass  # gone or unreadable: the claim says so
    return datetime.fromtimestamp(min(changes), UTC) if changes else None


def new_job_id() -> str:
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def claim(inbox: Path, name: str, work: WorkArea, lifecycle: Lifecycle, seen_at: datetime | None = None) -> JobRecord | None:
    """Move ``inbox/name`` into the work area. None if it is gone (taken by someone else or removed).

    ``seen_at``: when the service first saw the folder; the record's arrival is that, or the folder's last
    change before the claim if earlier (a folder that was there before the service started)."""
    record = lifecycle.claiming(new_job_id(), name, RESULTS_FOLDER, _arrival(inbox / name, seen_at))
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
