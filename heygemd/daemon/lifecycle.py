"""Every state change of a claimed job, in one place; each one is saved to the journal before it counts.

No other module writes a field of a ``JobRecord`` or ``VideoRecord`` (tests/daemon/test_record_writes.py
walks the code for that); they call the typed methods below.

    claiming ─▶ claimed ─▶ rendering ─▶ publishing ─▶ done
                  │            │  ▲          ▲
                  │            │  └ retry ┐   │ (a failure of the whole job: quarantine)
                  └────────────┴──────────┴───┘

Failures come as ``heygemd.codes.Failure``. A permanent one ends the video (or the job) at once.
A transient one starts or extends a *streak*: the job waits (doubling delays) and is tried again,
until the streak reaches ``retry_attempts`` or ``retry_budget_seconds``; then the last failure
counts as permanent. A video that renders ends the streak. A service that dies while working on a
job is noticed at the next start (``working_since`` still set) and counted in ``crashes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from heygemd.codes import ErrorCode, Failure
from heygemd.daemon.journal import (
    ChangedInputs,
    JobRecord,
    Journal,
    Phase,
    RetryState,
    VideoRecord,
)
from heygemd.daemon.reports import InputFile, JobStatus, RenderedBy, VideoStatus, utc_now


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    budget_seconds: float
    first_delay_seconds: float
    max_delay_seconds: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1, 2, ...)."""
        return min(self.max_delay_seconds, self.first_delay_seconds * 2 ** (failures - 1))

    def exhausted(self, state: RetryState, now: datetime) -> bool:
        if state.failures >= self.attempts:
            return True
        started = state.first_failure_at or now
        return (now - started).total_seconds() >= self.budget_seconds


class Place(StrEnum):
    """Where a job's files go when it ends; the record names each place before the move (outputs.py)."""

    OUTBOX = "outbox"
    ZIP = "zip"
    QUARANTINE = "quarantine"
    ARCHIVE = "archive"


def recorded_place(record: JobRecord, place: Place) -> Path | None:
    """Where the record says the job's files went (or are going) for ``place``."""
    return {
        Place.OUTBOX: record.outbox_path,
        Place.ZIP: record.zip_path,
        Place.QUARANTINE: record.quarantine_path,
        Place.ARCHIVE: record.archive_path,
    }[place]


class Lifecycle:
    def __init__(self, journal: Journal, policy: RetryPolicy, max_crashes: int) -> None:
        self.journal = journal
        self.policy = policy
        self.max_crashes = max_crashes

    # -------------------------------------------------------------- claiming

    def claiming(self, job_id: str, name: str, results_dir: str, arrived_at: datetime | None = None) -> JobRecord:
        """A new record, saved before the folder leaves the inbox: a crash right after the rename still knows it."""
        record = JobRecord(job_id=job_id, name=name, phase=Phase.CLAIMING, results_dir=results_dir, arrived_at=arrived_at)
        self.journal.save(record)
        return record

    def claimed(self, record: JobRecord) -> None:
        record.phase = Phase.CLAIMED
        self.journal.save(record)

    def not_claimed(self, record: JobRecord) -> None:
        """The rename failed (the folder is gone, or cannot move): the record goes."""
        self.journal.remove(record.job_id)

    # -------------------------------------------------------------- working on it

    def begin(self, record: JobRecord) -> None:
        """This service starts a step of the job; if it dies before ``pause`` or ``done``, that counts as a crash."""
        record.working_since = utc_now()
        self.journal.save_or_keep(record)  # a full state disk: the job's steps say what they can

    def pause(self, record: JobRecord) -> None:
        """The service stops working on the job for now (a clean stop, a retry later): not a crash."""
        record.working_since = None
        self.journal.save_or_keep(record)

    def note_crash(self, record: JobRecord) -> bool:
        """At start-up: was the job being worked on when the service died? Fails it after too many crashes."""
        if record.working_since is None:
            return False
        record.crashes += 1
        record.working_since = None
        if record.crashes >= self.max_crashes and record.phase is not Phase.PUBLISHING:
            self.fail_job(
                record,
                Failure(
                    code=ErrorCode.SERVICE_CRASHED,
                    reason=f"heygemd stopped unexpectedly {record.crashes} times while working on this job "
                    "(out of memory, or an internal error); it was set aside so that other jobs go on.",
                    details=["the service log (journalctl -u heygemd) has the details"],
                ),
            )
        else:
            self.journal.save(record)
        return True

    # -------------------------------------------------------------- planning

    def accept(
        self,
        record: JobRecord,
        audio: str,
        output_folder: str,
        videos: list[VideoRecord],
        inputs: list[InputFile],
        warnings: list[str],
        language: str | None = None,
    ) -> None:
        """The job's plan: ``language`` is job.toml's for its results page (None: the configuration's)."""
        record.started_at = record.started_at or utc_now()
        record.audio = audio
        record.language = language
        record.output_folder = output_folder
        record.videos = videos
        record.inputs = inputs
        record.warnings = warnings
        record.phase = Phase.RENDERING
        self.journal.save(record)

    def fail_job(self, record: JobRecord, failure: Failure) -> None:
        """The whole job goes to quarantine as it is (with what was rendered discarded)."""
        _mark_failed(record, failure)
        self.journal.save(record)

    # -------------------------------------------------------------- videos

    def video_done(
        self,
        record: JobRecord,
        video: VideoRecord,
        output_duration_s: float,
        seconds: float,
        worker: RenderedBy | None = None,
    ) -> None:
        """The video is in the results folder; ``worker`` rendered it (cluster mode)."""
        _task_ended(video, worker)
        video.status, video.failure = VideoStatus.OK, None
        video.output_duration_s = output_duration_s
        video.seconds = round(seconds, 3)
        record.retry = RetryState()  # progress: the streak of transient failures is over
        self.journal.save(record)

    def task_enqueued(self, record: JobRecord, video: VideoRecord, task_id: str) -> None:
        """Cluster mode: the video's render task, journaled before it is sent (a restart re-attaches to it)."""
        video.task_id = task_id
        video.task_attempts += 1
        self.journal.save(record)

    def render_again(self, record: JobRecord, videos: list[VideoRecord]) -> None:
        """These videos render again: their results are gone from the results folder (a crash before they were
        kept), or their audio changed after they ended (a job with several audio files)."""
        for video in videos:
            video.status, video.failure = VideoStatus.PENDING, None
        self.journal.save(record)

    def task_cancelled(self, record: JobRecord, video: VideoRecord) -> None:
        """Cluster mode: the video's task was cancelled without its job (a worker stopping): it is enqueued again."""
        _task_ended(video, None)
        self.journal.save(record)

    def video_failed(
        self,
        record: JobRecord,
        video: VideoRecord,
        failure: Failure,
        seconds: float | None = None,
        worker: RenderedBy | None = None,
    ) -> None:
        _task_ended(video, worker)
        video.status, video.failure = VideoStatus.FAILED, failure
        if seconds is not None:
            video.seconds = round(seconds, 3)
        self.journal.save(record)

    def video_transient(
        self, record: JobRecord, video: VideoRecord, failure: Failure, worker: RenderedBy | None = None
    ) -> datetime | None:
        """A video hit a transient failure: when to try again, or None when the streak is over (it failed)."""
        _task_ended(video, worker)
        retry_at = self._extend_streak(record, failure)
        if retry_at is None:
            self.video_failed(record, video, failure, worker=worker)
        else:
            video.failure = failure  # still pending: the reason it waits
            self.journal.save_or_keep(record)
        return retry_at

    def job_transient(self, record: JobRecord, failure: Failure) -> datetime | None:
        """A step of the whole job hit a transient failure: when to try again, or None (it was quarantined)."""
        retry_at = self._extend_streak(record, failure)
        if retry_at is None and record.phase is not Phase.PUBLISHING:
            _mark_failed(record, failure)
        self.journal.save_or_keep(record)  # the fault may be this very disk: kept in memory, the next step saves it
        return retry_at

    def _extend_streak(self, record: JobRecord, failure: Failure) -> datetime | None:
        now = utc_now()
        state = record.retry
        state.failures += 1
        state.first_failure_at = state.first_failure_at or now
        state.last = failure
        if self.policy.exhausted(state, now):
            state.next_attempt_at = None
            return None
        state.next_attempt_at = now + timedelta(seconds=self.policy.delay(state.failures))
        return state.next_attempt_at

    # -------------------------------------------------------------- inputs that change after the claim

    def inputs_changed(self, record: JobRecord, names: list[str], state: list[InputFile], max_changes: int) -> bool:
        """Some inputs changed: their videos render again once they settle. False when that was once too often."""
        record.input_changes += 1
        if record.input_changes > max_changes:
            self.fail_job(record, changed_while_rendering(names, record.input_changes))
            return False
        for video in record.videos:
            if record.audio in names or video.template in names:
                video.status, video.failure = VideoStatus.PENDING, None
        record.changed_inputs = ChangedInputs(names=names, first_seen_at=utc_now(), last_state=state)
        self.journal.save(record)
        return True

    def inputs_still_changing(self, record: JobRecord, state: list[InputFile]) -> None:
        assert record.changed_inputs is not None
        record.changed_inputs.last_state = state
        self.journal.save(record)

    def inputs_settled(self, record: JobRecord, inputs: list[InputFile]) -> None:
        record.inputs = inputs
        record.changed_inputs = None
        self.journal.save(record)

    def input_gone(self, record: JobRecord, name: str, failure: Failure) -> None:
        """The input ``name`` was deleted or replaced after the claim: its videos fail and it is not read again;
        the audio (or a file no video renders from) gone, the whole job fails."""
        affected = [video for video in record.videos if video.template == name]
        if name == record.audio or not affected:
            self.fail_job(record, failure)
            return
        record.inputs = [item for item in record.inputs if item.name != name]
        changing = record.changed_inputs
        if changing is not None:
            changing.names = [changed for changed in changing.names if changed != name]
            if not changing.names:
                record.changed_inputs = None
        for video in affected:
            _task_ended(video, None)
            video.status, video.failure = VideoStatus.FAILED, failure
        self.journal.save(record)

    # -------------------------------------------------------------- the end

    def moving_to(self, record: JobRecord, place: Place, target: Path) -> None:
        """The job's files for ``place`` are about to be renamed to ``target``: recorded first (a restart checks it)."""
        if place is Place.OUTBOX:
            record.outbox_path = target
        elif place is Place.ZIP:
            record.zip_path = target
        elif place is Place.QUARANTINE:
            record.quarantine_path = target
        else:
            record.archive_path = target
        self.journal.save(record)

    def inputs_disposed(self, record: JobRecord) -> None:
        """The job folder was archived or removed after its results were published."""
        record.inputs_disposed = True
        self.journal.save(record)

    def publishing(self, record: JobRecord) -> None:
        record.phase = Phase.PUBLISHING
        self.journal.save(record)

    def concluded(self, record: JobRecord, status: JobStatus, failure: Failure | None = None) -> None:
        """How the job ended; ``failure`` sums up a job none of whose videos could be rendered."""
        record.status = status
        record.failure = record.failure or failure
        record.finished_at = record.finished_at or utc_now()
        self.journal.save(record)

    def done(self, record: JobRecord) -> bool:
        """The job is published or quarantined: DONE, and its history line written once (journal.mark_done).

        True when the line was written now (not by a run that was killed before it could finish the job)."""
        record.working_since = None
        return self.journal.mark_done(record)


def _mark_failed(record: JobRecord, failure: Failure) -> None:
    record.started_at = record.started_at or utc_now()
    record.failure = failure
    record.phase = Phase.PUBLISHING


def _task_ended(video: VideoRecord, worker: RenderedBy | None) -> None:
    """Cluster mode: the video's task is over (saved with its outcome); ``worker`` rendered it."""
    video.task_id = None
    if worker is not None:
        video.worker = worker


def changed_while_rendering(names: list[str], times: int) -> Failure:
    listed = ", ".join(f'"{name}"' for name in names)
    verb = "was" if len(names) == 1 else "were"
    return Failure(
        code=ErrorCode.INPUT_CHANGED_WHILE_RENDERING,
        reason=f"{listed} {verb} still changing while it was rendered: an upload was probably still running "
        f"(it changed {times} times after the folder looked complete).",
        details=[f"changed after the claim: {name}" for name in names],
    )
