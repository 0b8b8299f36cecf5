"""Live status of a running service, in <state>/status.json, for `heygemd status` and people watching."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from heygemd.daemon.fsutil import write_atomic
from heygemd.daemon.reports import host_name, utc_now

STATUS_FILE = "status.json"


class CurrentJob(BaseModel):
    job: str
    job_id: str
    video: str | None = None
    index: int = 0
    total: int = 0
    stage: str | None = None
    percent: float | None = None


class ServiceStatus(BaseModel):
    pid: int = Field(default_factory=os.getpid)
    host: str = Field(default_factory=host_name)
    owner: str = Field("", description="the name this process's leases carry in the work area (host-pid-start id)")
    started_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    state: str = "starting"  # starting, loading model, idle, working, waiting for inbox, stopping, stopped
    config_file: str | None = None
    inbox: str = ""
    watch_mode: str = ""
    filesystem: str = ""
    dry_run: bool = False
    queued: list[str] = Field(default_factory=list, description="ready jobs waiting their turn (claimed ones first)")
    arriving: list[str] = Field(default_factory=list, description="folders not complete yet")
    waiting_for: dict[str, str] = Field(
        default_factory=dict, description="what each arriving folder waits for (\"voice.wav\" still open for writing, ...)"
    )
    current: CurrentJob | None = None
    engine: dict[str, Any] = Field(default_factory=dict)

    def summary(self) -> str:
        """One line for systemd's STATUS=."""
        if self.current is not None:
            job = self.current
            prefix = "stopping, " if self.state == "stopping" else ""
            where = f"video {job.index}/{job.total}" if job.total else "preparing"
            percent = f" {job.percent:.0f}%" if job.percent is not None else ""
            stage = f" ({job.stage})" if job.stage and job.stage != "render" else ""
            return f"{prefix}job {job.job}: {where}{percent}{stage}; {len(self.queued)} queued"
        if self.state == "idle":
            return f"idle; {len(self.queued)} queued, {len(self.arriving)} arriving"
        return self.state


class StatusFile:
    """Writes the status (rate-limited for progress updates; never fsynced: it is only a view)."""

    def __init__(self, state_dir: Path, min_interval: float = 1.0) -> None:
        self.path = state_dir / STATUS_FILE
        self.min_interval = min_interval
        self._last_write = 0.0

    def write(self, status: ServiceStatus, *, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval:
            return
        self._last_write = now
        status.updated_at = utc_now()
        try:
            write_atomic(self.path, status.model_dump_json(indent=2) + "\n", durable=False)
        except OSError:
            pass  # a full or read-only state disk must not stop the work; the journal write will report it


def read_status(state_dir: Path) -> ServiceStatus | None:
    try:
        return ServiceStatus.model_validate_json((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
