"""The service's side of ``<state>/control.json`` (heygemd.control): pause, resume and cancel requests.

The file is read again only when it changed (one ``stat`` per look). The loop looks at every
turn and every ``CONTROL_POLL_SECONDS`` while it sleeps; while a video renders, the render's
watch (supervise.py) looks as often. A cancel request names a job by its folder name or its job id. It is
honoured wherever the job is: a folder in the inbox (claimed and quarantined, whether ready or
still arriving), a claimed job waiting for its turn or a retry, or the job rendering (its render
is stopped). A request that matches nothing this service holds for ``CANCEL_UNMATCHED_SECONDS``
is dropped, so that it never cancels a folder of the same name dropped much later.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from heygemd.codes import ErrorCode, Failure
from heygemd.control import CONTROL_FILE, CancelRequest, ControlState, read_control
from heygemd.daemon.journal import HistoryEntry, JobRecord, Phase
from heygemd.daemon.status import ServiceStatus

CONTROL_POLL_SECONDS = 0.5  # a change of the file is seen within this (plus a loop turn)
CONTROL_REREAD_SECONDS = 5.0  # read even when the file looks unchanged (a change within the filesystem's time granularity)
CANCEL_UNMATCHED_SECONDS = 120.0


class ControlReader:
    """The requests in force, read again when the file's identity (inode, size, times) changes."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / CONTROL_FILE
        self.state_dir = state_dir
        self._state = ControlState()
        self._identity: tuple[int, ...] | None = None
        self._read_at = float("-inf")

    def current(self) -> ControlState:
        """The requests in force now."""
        now = time.monotonic()
        identity = self._stat()
        if identity != self._identity or now - self._read_at >= CONTROL_REREAD_SECONDS:
            self._identity, self._read_at = identity, now
            self._state = read_control(self.state_dir) if identity else ControlState()
        return self._state

    def changed(self) -> bool:
        """Whether the file differs from the last one read (one ``stat``; reads nothing)."""
        return self._stat() != self._identity

    def _stat(self) -> tuple[int, ...]:
        try:
            found = os.stat(self.path)
        except OSError:
            return ()
        return (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def cancelled_failure(job: str, request: CancelRequest) -> Failure:
    by = f" by {request.by}" if request.by else ""
    when = request.requested_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return Failure(
        code=ErrorCode.CANCELLED,
        reason=f'The job "{job}" was cancelled{by} ({when}) before it was finished; nothing of it was published.',
        details=["its files are here as they were dropped"],
    )


@dataclass(frozen=True)
class ClaimedJob:
    name: str
    job_id: str
    cancellable: bool  # False while it is being published (some results may already be out)


@dataclass
class CancelPlan:
    """What the loop does about the cancel requests this turn."""

    claimed: list[str] = field(default_factory=list)  # job ids: their turn comes now (the runner cancels them first thing)
    inbox: list[str] = field(default_factory=list)  # folder names: claim them now (the runner cancels them first thing)
    stale: list[CancelRequest] = field(default_factory=list)  # matched nothing too long: drop them


class CancelSorter:
    """Sorts the requests by where their job is; remembers since when each one matched nothing."""

    def __init__(self, forget_after: float = CANCEL_UNMATCHED_SECONDS) -> None:
        self.forget_after = forget_after
        self._unmatched_since: dict[tuple[str, float], float] = {}

    def sort(
        self, requests: Iterable[CancelRequest], claimed: Iterable[ClaimedJob], inbox: Iterable[str], now: float
    ) -> CancelPlan:
        plan = CancelPlan()
        claimed_jobs, in_inbox = list(claimed), set(inbox)
        still_unmatched: dict[tuple[str, float], float] = {}
        for request in requests:
            job = next((job for job in claimed_jobs if request.job in (job.name, job.job_id)), None)
            if job is not None:
                if job.cancellable:
                    plan.claimed.append(job.job_id)
                continue  # being published: the request is answered when the job ends
            if request.job in in_inbox:
                plan.inbox.append(request.job)
                continue
            key = (request.job, request.requested_at.timestamp())
            since = self._unmatched_since.get(key, now)
            if now - since >= self.forget_after:
                plan.stale.append(request)
            else:
                still_unmatched[key] = since
        self._unmatched_since = still_unmatched
        return plan


# ------------------------------------------------------------------ what `heygemd cancel JOB` tells the person


@dataclass(frozen=True)
class CancelOutlook:
    request: bool  # whether writing the request can do anything
    message: str


def cancel_outlook(
    job: str,
    *,
    running: bool,
    status: ServiceStatus | None,
    claimed: list[JobRecord],
    inbox: Path,
    recent: list[HistoryEntry],
) -> CancelOutlook:
    """Where ``job`` (a folder name or a job id) is, and so what a cancel request will do."""
    later = "at once" if running else "when the service starts (it is not running now)"
    current = status.current if status is not None and running else None
    if current is not None and job in (current.job, current.job_id):
        return CancelOutlook(
            True,
            f'"{current.job}" is rendering: it stops within seconds and goes to quarantine '
            f"as it was dropped (code {ErrorCode.CANCELLED.value}).",
        )
    record = next((record for record in claimed if job in (record.name, record.job_id)), None)
    if record is not None:
        if record.phase in (Phase.PUBLISHING, Phase.DONE):
            return CancelOutlook(False, f'"{record.name}" is being published: too late to cancel it.')
        return CancelOutlook(
            True,
            f'"{record.name}" is claimed ({record.phase.value}): it goes to quarantine as it was '
            f"dropped (code {ErrorCode.CANCELLED.value}), {later}.",
        )
    if _in_inbox(inbox, job):
        when = later if current is None else "as soon as the current job ends, before any other job is taken"
        return CancelOutlook(
            True,
            f'"{job}" is in the inbox: the service takes it out and puts it in quarantine '
            f"as it is (code {ErrorCode.CANCELLED.value}), {when}.",
        )
    finished = next((entry for entry in reversed(recent) if job in (entry.job, entry.job_id)), None)
    if finished is not None:
        where = finished.outbox or finished.quarantine or ""
        return CancelOutlook(
            False, f'"{finished.job}" already finished ({finished.status.value}, {where}): nothing to cancel.'
        )
    return CancelOutlook(False, f'no job "{job}" in the inbox, the queue or the recent results of this service.')


def _in_inbox(inbox: Path, name: str) -> bool:
    if not name or name in (".", "..") or "/" in name:
        return False
    try:
        return (inbox / name).is_dir()
    except OSError:
        return False
