"""The journal: one durable record per claimed job in <state>/jobs/, so a restart finishes every claimed job.

Each record is rewritten atomically (temp file, fsync, rename) before the step it announces,
so after a crash at any moment the record says which steps may have happened; every step
of the worker is written to be safe to repeat. Finished jobs leave a line in history.jsonl.
Each save is also mirrored beside the job in the shared work area (takeover.RecordMirror), so
that another service can finish the job if this one dies.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from heygemd.atomic import write_atomic
from heygemd.daemon.reports import JobStatus, VideoStatus, host_name, utc_now


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
    error: str | None = None
    seconds: float | None = None
    output_duration_s: float | None = None


class JobRecord(BaseModel):
    job_id: str
    name: str = Field(description="the folder's name in the inbox")
    phase: Phase
    host: str = Field(default_factory=host_name)
    pid: int = Field(default_factory=os.getpid)
    claimed_at: datetime = Field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Set when the folder was taken because it never finished arriving: it goes to quarantine as is.
    abandoned_reason: str | None = None
    abandoned_details: list[str] = Field(default_factory=list)
    # Set when the contract or the audio rules out the whole job.
    failure_reason: str | None = None
    failure_details: list[str] = Field(default_factory=list)
    audio: str | None = None
    output_folder: str | None = None
    videos: list[VideoRecord] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    status: JobStatus | None = None
    # Destinations, recorded before each move so a repeat knows where things went.
    outbox_path: Path | None = None
    zip_path: Path | None = None
    quarantine_path: Path | None = None
    archive_path: Path | None = None
    inputs_disposed: bool = False
    # Starts of work on this job that did not end cleanly (crash, kill, internal error).
    attempts: int = 0
    # Several services share the work area: who holds the job now, who held it before (taken over from),
    # the folder under work/<job-id>/ holding the finished videos, and a count of saves (newest copy wins).
    owner: str | None = None
    previous_owners: list[str] = Field(default_factory=list)
    results_dir: str = "output"
    revision: int = 0


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
    reason: str | None = None


class Journal:
    def __init__(self, state_dir: Path, history_size: int = 50, mirror: Callable[[JobRecord], None] | None = None) -> None:
        self.jobs_dir = state_dir / "jobs"
        self.history_file = state_dir / "history.jsonl"
        self.history_size = history_size
        self.mirror = mirror  # also writes the record beside the job on the share (takeover.RecordMirror)

    def save(self, record: JobRecord) -> None:
        record.revision += 1
        write_atomic(self.jobs_dir / f"{record.job_id}.json", record.model_dump_json(indent=2) + "\n")
        if self.mirror is not None:
            self.mirror(record)

    def remove(self, job_id: str) -> None:
        (self.jobs_dir / f"{job_id}.json").unlink(missing_ok=True)

    def records(self) -> list[JobRecord]:
        """Every unfinished job, oldest claim first. Unreadable records are skipped (and named in the error)."""
        records = []
        for path in sorted(self.jobs_dir.glob("*.json")) if self.jobs_dir.is_dir() else []:
            try:
                records.append(JobRecord.model_validate_json(path.read_text(encoding="utf-8")))
            except (OSError, ValidationError, ValueError):
                continue
        return sorted(records, key=lambda record: (record.claimed_at, record.job_id))

    def unreadable(self) -> list[Path]:
        bad = []
        for path in sorted(self.jobs_dir.glob("*.json")) if self.jobs_dir.is_dir() else []:
            try:
                JobRecord.model_validate_json(path.read_text(encoding="utf-8"))
            except (OSError, ValidationError, ValueError):
                bad.append(path)
        return bad

    def append_history(self, entry: HistoryEntry) -> None:
        lines = self.recent_lines(self.history_size * 2)
        lines.append(entry.model_dump_json())
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
