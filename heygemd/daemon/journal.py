"""The journal: one durable record per claimed job in <state>/jobs/, so a restart finishes every claimed job.

Each record is rewritten atomically (temp file, fsync, rename) before the step it announces,
so after a crash at any moment the record says which steps may have happened; every step
of the worker is written to be safe to repeat. Finished jobs leave a line in history.jsonl:
exactly one, even when the service is killed while finishing (``mark_done``, then ``remove``;
``recover_finished`` at start-up).
The journal is this service's own (its state folder): only this service, restarted, finishes its jobs.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import structlog
from pydantic import BaseModel, Field, ValidationError, field_validator

from heygemd.atomic import write_atomic
from heygemd.codes import ErrorCode, Failure
from heygemd.daemon.reports import InputFile, JobStatus, RenderedBy, VideoStatus, host_name, utc_now
from heygemd.names import display_json

_log = structlog.get_logger("heygemd.daemon")


class Phase(StrEnum):
    CLAIMING = "claiming"  # about to rename the folder out of the inbox
    CLAIMED = "claimed"  # the folder is in the work area
    RENDERING = "rendering"
    PUBLISHING = "publishing"  # results are moving to the outbox / quarantine / archive
    DONE = "done"


class VideoRecord(BaseModel):
    template: str
    output_stem: str
    status: VideoStatus = VideoStatus.PENDING
    failure: Failure | None = Field(None, description="why it failed; while pending, the transient failure it waits out")
    seconds: float | None = None
    output_duration_s: float | None = None
    # Cluster mode: the render task in flight (journaled before it is enqueued: a restarted coordinator
    # re-attaches to it), the tasks given to workers so far, and the worker that rendered it.
    task_id: str | None = None
    task_attempts: int = 0
    worker: RenderedBy | None = None

    @field_validator("worker", mode="before")
    @classmethod
    def _worker_name(cls, value: object) -> object:
        """A journal of an older heygemd holds the worker's name only."""
        if isinstance(value, str):
            return RenderedBy(name=value, host=value.split("/", 1)[0])
        return value


class RetryState(BaseModel):
    """The current streak of transient failures (share gone, disk full, ...); a success ends the streak."""

    failures: int = 0
    first_failure_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last: Failure | None = None


class ChangedInputs(BaseModel):
    """Inputs that changed after the claim: the job waits for them to settle, then renders again."""

    names: list[str]
    first_seen_at: datetime
    last_state: list[InputFile] = Field(default_factory=list, description="size and mtime at the last look")


class JobRecord(BaseModel):
    job_id: str
    name: str = Field(description="the folder's name in the inbox")
    phase: Phase
    host: str = Field(default_factory=host_name)
    pid: int = Field(default_factory=os.getpid)
    claimed_at: datetime = Field(default_factory=utc_now)
    arrived_at: datetime | None = Field(
        None, description="when the folder arrived: first seen in the inbox, or its last change before the claim if earlier"
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Set when the whole job goes to quarantine: a folder that never finished arriving, the contract, the audio...
    failure: Failure | None = None
    audio: str | None = None
    output_folder: str | None = None
    language: str | None = Field(None, description="job.toml's language for the results page (None: the config's)")
    videos: list[VideoRecord] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    status: JobStatus | None = None
    # Destinations, recorded before each move so a repeat knows where things went.
    outbox_path: Path | None = None
    zip_path: Path | None = None
    quarantine_path: Path | None = None
    archive_path: Path | None = None
    inputs_disposed: bool = False
    # Each input's size, mtime and sha256 when the job was planned; checked again before each render and publishing.
    inputs: list[InputFile] = Field(default_factory=list)
    changed_inputs: ChangedInputs | None = None
    input_changes: int = Field(
        0, description="times an input changed after the claim (each time, affected videos render again)"
    )
    retry: RetryState = Field(default_factory=RetryState)
    # Set while this service works on the job; found set at start-up, it means the service died working on it.
    working_since: datetime | None = None
    crashes: int = 0
    # The folder under work/<job-id>/ holding the finished videos: claim.RESULTS_FOLDER; records of a heygemd
    # that still had leases name output-<owner>, so a job claimed before an upgrade is resumed where it was.
    results_dir: str = "output"  # claim.RESULTS_FOLDER


class HistoryEntry(BaseModel):
    job: str
    job_id: str
    status: JobStatus
    finished_at: datetime
    seconds: float
    videos_ok: int
    videos_failed: int
    outbox: Path | None = None
    quarantine: Path | None = None
    archive: Path | None = Field(None, description="where its inputs were archived (outputs.after_success)")
    reason: str | None = None
    details: list[str] = Field(default_factory=list, description="the failure's details (one per failed video...)")
    code: ErrorCode | None = None


def history_entry(record: JobRecord) -> HistoryEntry:
    """The history line of a finished job, from its record alone (so a restart can write it again)."""
    finished = record.finished_at or utc_now()
    return HistoryEntry(
        job=record.name,
        job_id=record.job_id,
        status=record.status or JobStatus.FAILED,
        finished_at=finished,
        seconds=round((finished - record.claimed_at).total_seconds(), 3),
        videos_ok=sum(video.status is VideoStatus.OK for video in record.videos),
        videos_failed=sum(video.status is VideoStatus.FAILED for video in record.videos),
        outbox=record.outbox_path,
        quarantine=record.quarantine_path,
        archive=record.archive_path,
        reason=record.failure.reason if record.failure else None,
        details=list(record.failure.details) if record.failure else [],
        code=record.failure.code if record.failure else None,
    )


def _record_text(record: JobRecord) -> str:
    """The record as JSON that keeps every name's bytes: ASCII, an undecodable byte as its ``\\udcXX`` escape."""
    return json.dumps(record.model_dump(mode="json"), ensure_ascii=True, indent=2) + "\n"


def _read_record(path: Path) -> JobRecord:
    return JobRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))


class Journal:
    def __init__(self, state_dir: Path, history_size: int = 50) -> None:
        self.jobs_dir = state_dir / "jobs"
        self.history_file = state_dir / "history.jsonl"
        self.history_size = history_size
        self.unsaved: set[str] = set()  # job ids whose latest state is in memory only (save_or_keep)

    def save(self, record: JobRecord) -> None:
        write_atomic(self.jobs_dir / f"{record.job_id}.json", _record_text(record))
        self.unsaved.discard(record.job_id)

    def save_or_keep(self, record: JobRecord) -> bool:
        """Save, or, when the state folder cannot be written (a full disk, an I/O error), keep the record in memory.

        For the saves of a job that waits (a retry, a pause): a failed write is then one more transient
        fault, not a new error. The service holds the record and the next ``save`` writes it whole.
        False when it was kept in memory only.
        """
        try:
            self.save(record)
        except OSError as err:
            self.unsaved.add(record.job_id)
            _log.warning(
                "the journal cannot be written; the job's record is kept in memory and written at the next step",
                job=record.name,
                error=err.strerror or str(err),
            )
            return False
        return True

    def remove(self, job_id: str) -> None:
        (self.jobs_dir / f"{job_id}.json").unlink(missing_ok=True)

    def records(self) -> list[JobRecord]:
        """Every unfinished job, oldest claim first. Unreadable records are skipped (and named in the error)."""
        records = []
        for path in sorted(self.jobs_dir.glob("*.json")) if self.jobs_dir.is_dir() else []:
            try:
                records.append(_read_record(path))
            except (OSError, ValidationError, ValueError):
                continue
        return sorted(records, key=lambda record: (record.claimed_at, record.job_id))

    def unreadable(self) -> list[Path]:
        bad = []
        for path in sorted(self.jobs_dir.glob("*.json")) if self.jobs_dir.is_dir() else []:
            try:
                _read_record(path)
            except (OSError, ValidationError, ValueError):
                bad.append(path)
        return bad

    def mark_done(self, record: JobRecord) -> bool:
        """First step of finishing a job: the record says DONE, then the job's history line is appended once.

        The caller then clears the job's work folder and finally calls ``remove``. A kill anywhere in
        between leaves a DONE record, which ``recover_finished`` completes at the next start.
        Returns whether the history line was written now (False: it already was).
        """
        if record.phase is not Phase.DONE or record.finished_at is None:
            record.finished_at = record.finished_at or utc_now()  # saved: a repeat writes the same line
            record.phase = Phase.DONE
            self.save(record)
        return self.append_history_once(history_entry(record))

    def recover_finished(self) -> list[JobRecord]:
        """At start-up: write the missing history lines of the DONE records a killed run left; returns those jobs.

        Every DONE record stays in the journal: the usual resume path clears its work folder and removes it.
        """
        done = [record for record in self.records() if record.phase is Phase.DONE]
        return [record for record in done if self.mark_done(record)]

    def append_history_once(self, entry: HistoryEntry) -> bool:
        """Append ``entry`` unless its job is already among the recent lines. True if it was appended."""
        if any(seen.job_id == entry.job_id for seen in self.history(self.history_size * 2)):
            return False
        self.append_history(entry)
        return True

    def append_history(self, entry: HistoryEntry) -> None:
        lines = self.recent_lines(self.history_size * 2)
        lines.append(display_json(entry, indent=None))
        if len(lines) > self.history_size * 2:
            lines = lines[-self.history_size :]
        write_atomic(self.history_file, "\n".join(lines) + "\n")

    def recent_lines(self, limit: int) -> list[str]:
        try:
            lines = [line for line in self.history_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except FileNotFoundError:
            return []
        return lines[-limit:]

    def history(self, limit: int) -> list[HistoryEntry]:
        entries = []
        for line in self.recent_lines(limit):
            try:
                entries.append(HistoryEntry.model_validate(json.loads(line)))
            except (ValueError, ValidationError):
                continue
        return entries
