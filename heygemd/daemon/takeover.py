"""Taking over jobs whose holder stopped renewing its lease, and holding this service's own jobs again.

Every journal save is mirrored beside the job on the share (``record-<owner>.json``), so any service
can finish any claimed job: the one whose rename wins the lease imports that record into its own
journal, moves the videos the previous holder finished into its own results folder, and the usual
resume logic (every step is safe to repeat) does the rest. A job already committed to publishing
keeps the committed results folder: that folder is the one thing renamed into the outbox.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from heygemd.atomic import write_atomic
from heygemd.daemon import lease
from heygemd.daemon.claim import INPUT_FOLDER, RESULTS_PREFIX, WorkArea, results_folder_name
from heygemd.daemon.fsutil import remove_tree
from heygemd.daemon.heartbeat import LeaseKeeper
from heygemd.daemon.journal import JobRecord, Phase
from heygemd.daemon.lease import Lease, LeaseObserver, Owner, Verdict
from heygemd.daemon.reports import VideoStatus

RECORD_PREFIX = "record-"


@dataclass(frozen=True)
class Outcome:
    """What became of a job this service tried to hold: the record to go on with, or None and why."""

    record: JobRecord | None
    reason: str
    previous: str | None = None  # the holder it was taken from


class RecordMirror:
    """Journal hook: the record, also beside the job on the share. Never creates the job folder."""

    def __init__(self, work: WorkArea, owner: Owner) -> None:
        self.work = work
        self.owner = owner

    def __call__(self, record: JobRecord) -> None:
        path = self.work.job_dir(record.job_id) / f"{RECORD_PREFIX}{self.owner.id}.json"
        try:
            write_atomic(path, record.model_dump_json(indent=2) + "\n", create_parent=False)
        except FileNotFoundError:
            pass  # no job folder (not made yet, or the job is finished): nothing to take over


def mirrored_record(job_dir: Path, holder: str | None) -> JobRecord | None:
    """The holder's mirrored record, else the most advanced one left by anyone (a holder that died early)."""
    records: dict[str, JobRecord] = {}
    for path in job_dir.glob(f"{RECORD_PREFIX}*.json"):
        try:
            records[path.name[len(RECORD_PREFIX) : -len(".json")]] = JobRecord.model_validate_json(path.read_text("utf-8"))
        except (OSError, ValueError, ValidationError):
            continue
    if holder in records:
        return records[holder]
    return max(records.values(), key=lambda record: record.revision, default=None)


class Takeover:
    def __init__(self, work: WorkArea, owner: Owner, keeper: LeaseKeeper, lease_seconds: float) -> None:
        self.work = work
        self.owner = owner
        self.keeper = keeper
        self.observer = LeaseObserver(lease_seconds)

    # ------------------------------------------------------------------ other services' jobs

    def expired_leases(self, now: float) -> list[Lease]:
        """Leases in the work area whose holder stopped renewing them (never one this process holds)."""
        if not self.work.root.is_dir():
            return []  # an unmounted share: nothing is concluded from its absence
        expired, present = [], set()
        for job_dir in sorted(self.work.root.iterdir()):
            if job_dir.name.startswith(".") or not job_dir.is_dir():
                continue
            current = lease.find_lease(job_dir)
            if current is None:
                continue  # no lease: a claim being made, or an older heygemd's job (resumed by its own service)
            present.add(current.path)
            verdict = self.observer.judge(current, self.owner, now)
            if verdict is Verdict.EXPIRED or (verdict is Verdict.MINE and not self.keeper.holds(job_dir)):
                expired.append(current)  # ours but let go (a takeover that failed half-way): taken up again
        self.observer.keep_only(present)
        return expired

    def take_over(self, expired: Lease) -> Outcome:
        name = str(expired.info.get("job") or expired.job_dir.name)
        if not lease.take(expired, self.owner, name):
            return Outcome(None, "another service took it over first")
        with self._letting_go_on_error(expired.job_dir, name):
            record = mirrored_record(expired.job_dir, expired.owner_id)
            return self._adopt(expired.job_dir, record, expired.owner_id, name)

    # ------------------------------------------------------------------ this service's journal

    def resume_own(self, record: JobRecord) -> Outcome:
        """Hold a job of this service's journal again (after a restart), unless another service has it now."""
        job_dir = self.work.job_dir(record.job_id)
        if not self.work.root.is_dir():
            raise FileNotFoundError(errno.ENOENT, "the work folder is not there (share unmounted?)", str(self.work.root))
        if not job_dir.is_dir():
            if record.phase in (Phase.CLAIMING, Phase.DONE):
                return Outcome(None, "its claim never completed" if record.phase is Phase.CLAIMING else "it was finished")
            return Outcome(None, "its work folder is gone: another service took it over and finished it")
        current = lease.find_lease(job_dir)
        previous: str | None = None
        if current is None:
            lease.create(job_dir, self.owner, record.name)  # claimed by an older heygemd, or the claim died early
            previous = record.owner
        elif current.owner_id != self.owner.id:
            mine_before = current.owner_id == record.owner or lease.previous_run_of(current.info, self.owner)
            if not (mine_before or lease.certainly_dead(current.info, self.owner)):
                return Outcome(None, f"another service holds it now ({current.owner_id})", current.owner_id)
            if not lease.take(current, self.owner, record.name):
                return Outcome(None, "another service took it over first")
            previous = current.owner_id
        with self._letting_go_on_error(job_dir, record.name):
            newer = mirrored_record(job_dir, previous)
            if newer is not None and newer.revision > record.revision:
                record = newer  # the share's copy was written after the local one
            return self._adopt(job_dir, record, previous, record.name)

    # ------------------------------------------------------------------ both

    @contextmanager
    def _letting_go_on_error(self, job_dir: Path, name: str) -> Iterator[None]:
        """Hold the lease just won; if adopting the job fails (the share), stop renewing it so it is taken up again."""
        self.keeper.hold(job_dir, name)
        try:
            yield
        except BaseException:
            self.keeper.release(job_dir)
            raise

    def _adopt(self, job_dir: Path, record: JobRecord | None, previous: str | None, name: str) -> Outcome:
        """Make the record this service's and gather the finished videos; clean up a job with nothing left to do."""
        input_dir = job_dir / INPUT_FOLDER
        if record is None:  # the holder died between its lease and its first record
            if not input_dir.is_dir():
                return self._discard(job_dir, "a claim that never completed", previous)
            record = JobRecord(job_id=job_dir.name, name=name, phase=Phase.CLAIMED)
        if previous and previous != self.owner.id and previous not in record.previous_owners:
            record.previous_owners.append(previous)
        record.owner = self.owner.id
        if record.phase is Phase.CLAIMING:
            if not input_dir.is_dir():
                return self._discard(job_dir, "a claim that never completed", previous)
            record.phase = Phase.CLAIMED
        if record.phase is Phase.DONE:
            return self._discard(job_dir, "its previous holder had finished it", previous)
        if record.phase in (Phase.CLAIMED, Phase.RENDERING):
            gather_results(job_dir, record, results_folder_name(self.owner.id))
        # In the publishing phase the committed results folder stays the one to publish.
        return Outcome(record, "held", previous)

    def _discard(self, job_dir: Path, reason: str, previous: str | None) -> Outcome:
        self.keeper.release(job_dir)
        remove_tree(job_dir)
        return Outcome(None, reason, previous)


def gather_results(job_dir: Path, record: JobRecord, mine: str) -> None:
    """Move the videos finished by earlier holders into this holder's results folder.

    A stalled earlier holder may still write into its own folder; it never touches ours, and a video
    counts as finished only once its holder closed and fsynced it (the record says so after that).
    """
    target = job_dir / mine
    target.mkdir(exist_ok=True)
    sources = [job_dir / record.results_dir] + [
        entry for entry in sorted(job_dir.iterdir()) if entry.name.startswith(RESULTS_PREFIX) and entry.is_dir()
    ]
    for video in record.videos:
        if video.status is not VideoStatus.OK:
            continue
        names = (f"{video.output_stem}.json", f"{video.output_stem}.mp4")  # the video last: it marks both as there
        if all((target / file).exists() for file in names):
            continue
        source = next((folder for folder in sources if folder != target and all((folder / file).exists() for file in names)), None)
        if source is not None:
            for file in names:
                os.replace(source / file, target / file)
        # else: the render step finds the video missing and renders it again
    record.results_dir = mine
