"""Claiming a job: one atomic rename of the folder out of the inbox into this service's work area.

Work area layout, one folder per claimed job (ready for several services sharing an inbox:
the owner file is where a lease would live)::

    work/<job-id>/owner.json   who holds the job (host, pid, state directory, time)
    work/<job-id>/input/       the job folder exactly as it was dropped
    work/<job-id>/output/      results being built, moved to the outbox when complete
    work/<job-id>/failed/      failed templates being gathered for quarantine
"""

from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from heygemd.daemon.fsutil import fsync_directory, remove_tree, rename_no_replace, write_json_atomic
from heygemd.daemon.journal import Journal, JobRecord, Phase
from heygemd.daemon.reports import host_name, utc_now

OWNER_FILE = "owner.json"


class ClaimError(Exception):
    """The folder could not be claimed for a reason the operator must fix (permissions, filesystems)."""


@dataclass(frozen=True)
class WorkArea:
    root: Path

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def input_dir(self, job_id: str) -> Path:
        return self.root / job_id / "input"

    def output_dir(self, job_id: str) -> Path:
        return self.root / job_id / "output"

    def failed_dir(self, job_id: str) -> Path:
        return self.root / job_id / "failed"


def new_job_id(name: str) -> str:
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def claim(inbox: Path, name: str, work: WorkArea, journal: Journal, state_dir: Path) -> JobRecord | None:
    """Move ``inbox/name`` into the work area. None if it is gone (taken by someone else or removed)."""
    record = JobRecord(job_id=new_job_id(name), name=name, phase=Phase.CLAIMING)
    journal.save(record)  # first, so a crash right after the rename still knows the job
    job_dir = work.job_dir(record.job_id)
    try:
        job_dir.mkdir(parents=True)
        write_json_atomic(
            job_dir / OWNER_FILE,
            {"host": host_name(), "pid": os.getpid(), "state": str(state_dir.resolve()), "claimed_at": utc_now().isoformat()},
        )
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


def settle_interrupted_claim(record: JobRecord, work: WorkArea, journal: Journal) -> JobRecord | None:
    """After a crash during a claim: keep the job if the rename happened, else forget the attempt."""
    if work.input_dir(record.job_id).is_dir():
        record.phase = Phase.CLAIMED
        journal.save(record)
        return record
    remove_tree(work.job_dir(record.job_id))
    journal.remove(record.job_id)
    return None
