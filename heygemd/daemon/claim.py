"""Claiming a job: one atomic rename of the folder out of the inbox into the shared work area.

Work area layout, one folder per claimed job (several services may share it, see lease.py)::

    work/<job-id>/lease-<owner>.json    who holds the job; renewed while its process lives
    work/<job-id>/record-<owner>.json   the holder's journal record, so another service can take over
    work/<job-id>/input/                the job folder exactly as it was dropped
    work/<job-id>/output-<owner>/       finished videos of that holder, moved to the outbox when complete
    work/<job-id>/failed/               failed templates being gathered for quarantine

Jobs claimed by an older heygemd have ``owner.json`` and ``output/`` instead; they are resumed as before.
"""

from __future__ import annotations

import errno
import secrets
from dataclasses import dataclass
from pathlib import Path

from heygemd.atomic import fsync_directory
from heygemd.daemon import lease
from heygemd.daemon.fsutil import remove_tree, rename_no_replace
from heygemd.daemon.journal import JobRecord, Journal, Phase
from heygemd.daemon.lease import Owner
from heygemd.daemon.reports import utc_now

OWNER_FILE = "owner.json"  # older layout, read to recognise this service's jobs without a lease
INPUT_FOLDER = "input"
FAILED_FOLDER = "failed"
RESULTS_PREFIX = "output"  # results of one holder: output-<owner id> (an older heygemd's: output)


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


def results_folder_name(owner_id: str) -> str:
    return f"{RESULTS_PREFIX}-{owner_id}"


def new_job_id() -> str:
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def claim(inbox: Path, name: str, work: WorkArea, journal: Journal, owner: Owner) -> JobRecord | None:
    """Move ``inbox/name`` into the work area. None if it is gone (taken by someone else or removed)."""
    record = JobRecord(
        job_id=new_job_id(), name=name, phase=Phase.CLAIMING, owner=owner.id, results_dir=results_folder_name(owner.id)
    )
    journal.save(record)  # first, so a crash right after the rename still knows the job
    job_dir = work.job_dir(record.job_id)
    try:
        job_dir.mkdir(parents=True)
        lease.create(job_dir, owner, name)
        journal.save(record)  # now mirrored beside the lease: whoever takes the lease over finds it
        rename_no_replace(inbox / name, work.input_dir(record.job_id))
    except FileNotFoundError:
        remove_tree(job_dir)
        journal.remove(record.job_id)
        return None
    except OSError as err:
        remove_tree(job_dir)
        journal.remove(record.job_id)
        if err.errno == errno.EXDEV:
            raise ClaimError(
                f"cannot claim {name!r}: the work folder {work.root} is not on the inbox's filesystem; "
                "set paths.work to a folder on the same share as paths.inbox"
            ) from None
        raise ClaimError(f"cannot claim {name!r}: {err.strerror} ({err.filename})") from None
    fsync_directory(inbox)
    record.phase = Phase.CLAIMED
    journal.save(record)
    return record

