"""Requests people make of a running service, through one small file it honours: ``<state>/control.json``.

The web page (`heygemd web`) and the command line (`heygemd pause`, `resume`, `cancel JOB`) write
it; `heygemd run` reads it between steps and while it renders. Writers change it under an
exclusive lock (``control.lock`` beside it) with an atomic replace, so two writers never lose
each other's request and the service never reads half a file. It imports nothing heavy: the web
service reads and writes it without the engine.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from heygemd.atomic import write_atomic
from heygemd.clock import utc_now

CONTROL_FILE = "control.json"
CONTROL_LOCK = "control.lock"


class CancelRequest(BaseModel):
    job: str = Field(description="the job folder's name as dropped, or its job id")
    requested_at: datetime = Field(default_factory=utc_now)
    by: str = Field("", description="who asked: 'web', 'cli', a user name")


class ControlState(BaseModel):
    paused: bool = Field(False, description="take no new jobs (the current one finishes)")
    paused_at: datetime | None = None
    cancel: list[CancelRequest] = Field(default_factory=list, description="jobs to cancel; removed once honoured")
    updated_at: datetime = Field(default_factory=utc_now)

    def wants_cancelled(self, name: str, job_id: str | None = None) -> CancelRequest | None:
        return next((request for request in self.cancel if request.job in (name, job_id)), None)


def read_control(state_dir: Path) -> ControlState:
    """The requests in force (none when the file is missing or unreadable: a broken file never stops the work)."""
    try:
        return ControlState.model_validate_json((state_dir / CONTROL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return ControlState()


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(state_dir / CONTROL_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o664)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def update_control(state_dir: Path, change: Callable[[ControlState], None]) -> ControlState:
    """Read, change and write the requests under the lock; returns what was written."""
    with _locked(state_dir):
        state = read_control(state_dir)
        change(state)
        state.updated_at = utc_now()
        write_atomic(state_dir / CONTROL_FILE, state.model_dump_json(indent=2) + "\n")
        return state


def request_pause(state_dir: Path, paused: bool) -> ControlState:
    def change(state: ControlState) -> None:
        state.paused = paused
        state.paused_at = utc_now() if paused else None

    return update_control(state_dir, change)


def request_cancel(state_dir: Path, job: str, by: str = "") -> ControlState:
    def change(state: ControlState) -> None:
        if state.wants_cancelled(job) is None:
            state.cancel.append(CancelRequest(job=job, by=by))

    return update_control(state_dir, change)


def cancel_honoured(state_dir: Path, *names: str) -> ControlState:
    """The service has cancelled the job (known by any of ``names``): the request is done."""
    return update_control(
        state_dir, lambda state: setattr(state, "cancel", [request for request in state.cancel if request.job not in names])
    )
