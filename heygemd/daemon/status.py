"""Live status of a running service, in <state>/status.json, for `heygemd status` and people watching."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from heygemd.atomic import write_atomic
from heygemd.codes import ErrorCode
from heygemd.daemon.diskspace import DiskShortage
from heygemd.daemon.model_wait import MissingModelFile
from heygemd.daemon.reports import host_name, utc_now
from heygemd.engine.report import EngineInfo, ProgressStage, percent_done
from heygemd.names import display_json

STATUS_FILE = "status.json"
DEFAULT_STATE_FOLDER = "state"  # paths.state's default: a name that says nothing about the service
IDLE = "idle"
WAITING_FOR_INBOX = "waiting for the inbox"
WAITING_FOR_DISK = "waiting for disk space"
WAITING_FOR_MODEL = "waiting for the model files"  # runs without its weights; loads them once they are valid
PAUSED = "paused"  # idle because `heygemd pause` (or the web page) asked: no new jobs are taken
STARTING, LOADING_MODEL, STOPPING, STOPPED = "starting", "loading model", "stopping", "stopped"
WORKING = "working"
STANDBY = "standby"  # cluster mode: another coordinator serves the queue
NO_WORKER_ONLINE = "no worker online"  # cluster mode: no `heygemd worker` beats; jobs wait for one


class CurrentJob(BaseModel):
    job: str
    job_id: str
    video: str | None = None
    index: int = 0
    total: int = 0
    stage: ProgressStage | None = None
    percent: float | None = Field(None, description="of the whole video, across its stages; never goes back")
    detected: bool = Field(False, description="a face-finding stage was reported: it fills the first part of percent")
    frames_done: int | None = Field(None, description="frames of the current stage done (detect, then render)")
    frames_total: int | None = None
    fps: float | None = Field(None, description="frames per second of the current stage so far")
    eta_seconds: float | None = Field(None, description="until the current stage of this video ends, at that speed")
    stage_started_at: datetime | None = None

    def advance(self, frames_done: int, frames_total: int, stage: ProgressStage, now: datetime | None = None) -> None:
        """A progress report of the render: the frames, speed and time left of its stage, and the video's percent.

        ``percent`` is the whole video's (engine.report.percent_done) and never goes back, from one stage to the
        next: finding the face (a CPU render does it first) fills its first part, rendering and restoring the rest."""
        now = now or utc_now()
        stage = ProgressStage(stage)  # a worker's progress arrives as JSON: a plain string would not serialize cleanly
        if stage != self.stage or self.stage_started_at is None:
            self.stage, self.stage_started_at = stage, now
        self.frames_done, self.frames_total = frames_done, frames_total
        if stage is ProgressStage.DETECT:
            self.detected = True
        self.percent = max(self.percent or 0.0, percent_done(frames_done, frames_total, stage, self.detected))
        elapsed = (now - self.stage_started_at).total_seconds()
        self.fps = round(frames_done / elapsed, 2) if elapsed > 0 and frames_done else None
        self.eta_seconds = round((frames_total - frames_done) / self.fps, 1) if self.fps else None


class WorkerTask(BaseModel):
    """Cluster mode: one render task of the current job, on a worker (or still queued)."""

    video: str
    task_id: str
    state: str
    worker: str | None = None
    stage: str | None = None
    frames_done: int | None = None
    frames_total: int | None = None
    percent: float | None = None

    def describe(self) -> str:
        """``front.mp4 on host/gpu 40%``, or ``front.mp4 queued`` while no worker has taken it."""
        if self.worker is None:
            return f"{self.video} queued"
        percent = f" {self.percent:.0f}%" if self.percent is not None else ""
        return f"{self.video} on {self.worker}{percent}"


class ClusterWorker(BaseModel):
    """Cluster mode: one `heygemd worker` as it publishes itself with its heartbeat (cluster/presence.py)."""

    name: str = Field(description="host/device/pid")
    host: str
    gpu: str = Field(description="the GPU's name, or CPU")
    model: str = Field(description="the worker's engine in words: checkpoint, detector, dry run")
    engine: EngineInfo | None = None
    started_at: datetime
    last_heartbeat: datetime
    online: bool = Field(True, description="its last heartbeat is recent (set by the reader, not the worker)")
    task: CurrentJob | None = Field(None, description="the video it renders now: frames, fps and time left")

    def describe(self) -> str:
        state = "online" if self.online else "LOST"
        beat = self.last_heartbeat.astimezone().strftime("%H:%M:%S")
        doing = "idle"
        if self.task is not None:
            task = self.task
            frames = f" {task.frames_done}/{task.frames_total} frames" if task.frames_total else ""
            fps = f", {task.fps} fps" if task.fps else ""
            left = f", {task.eta_seconds:.0f} s left" if task.eta_seconds is not None else ""
            doing = f"{task.job}: {task.video}{frames}{fps}{left}"
        return f"{self.name} ({self.host}, {self.gpu}, {self.model}) {state}, last heartbeat {beat}: {doing}"


class WaitingJob(BaseModel):
    """A claimed job that waits before its next try: why, and until when."""

    job: str
    job_id: str
    code: ErrorCode
    reason: str
    retry_at: datetime | None = None
    failures: int = 0
    max_failures: int = 0

    def describe(self) -> str:
        when = f"; next try {self.retry_at.astimezone().strftime('%H:%M:%S')}" if self.retry_at else ""
        count = f" (failure {self.failures} of {self.max_failures})" if self.failures else ""
        return f"{self.job}: waits: {self.code.value}{count}{when}: {self.reason}"


def service_name(configured: str, state_dir: Path) -> str:
    """service.name, else the host's name (and the state folder's, for several services on one host: "gpu0")."""
    if configured.strip():
        return configured.strip()
    folder = state_dir.resolve().name
    return host_name() if folder in ("", DEFAULT_STATE_FOLDER) else f"{host_name()} {folder}"


class ServiceStatus(BaseModel):
    name: str = Field("", description="the service's name: service.name, else the host's (see service_name)")
    pid: int = Field(default_factory=os.getpid)
    host: str = Field(default_factory=host_name)
    owner: str = Field(
        "", description="this process's name (host-pid-random); in cluster mode, the holder of the coordinator lock"
    )
    started_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    state: str = "starting"  # starting, loading model, waiting for the model files, idle, paused, working, waiting for the inbox, waiting for disk space, stopping, stopped
    paused: bool = Field(False, description="no new jobs are taken (control.json); the current one finishes")
    config_file: str | None = None
    inbox: str = ""
    watch_mode: str = ""
    filesystem: str = ""
    inbox_missing: bool = Field(False, description="the inbox folder is not there (share unmounted?)")
    dry_run: bool = False
    queued: list[str] = Field(default_factory=list, description="ready jobs waiting their turn (claimed ones first)")
    arriving: list[str] = Field(default_factory=list, description="folders not complete yet")
    waiting_jobs: list[WaitingJob] = Field(default_factory=list, description="claimed jobs waiting to be tried again")
    waiting_for_disk: list[DiskShortage] = Field(
        default_factory=list, description="ready jobs left in the inbox because their results would not fit"
    )
    waiting_for: dict[str, str] = Field(
        default_factory=dict, description='what each arriving folder waits for ("voice.wav" still open for writing, ...)'
    )
    model_files: list[MissingModelFile] = Field(
        default_factory=list,
        description="waiting for the model files: each file wanted, where it goes and what is wrong (empty once loaded)",
    )
    current: CurrentJob | None = None
    engine: EngineInfo | None = None
    cluster: bool = Field(False, description="cluster mode: the videos render on `heygemd worker` processes")
    tasks: list[WorkerTask] = Field(default_factory=list, description="cluster mode: the current job's render tasks")
    workers: list[ClusterWorker] = Field(default_factory=list, description="cluster mode: the workers, online or lost")

    @property
    def no_worker_online(self) -> bool:
        """Cluster mode with no worker beating: a job would wait for one, not render."""
        return self.cluster and not any(worker.online for worker in self.workers)

    @property
    def ready(self) -> bool:
        """Started, with its model loaded, and not stopping: it takes jobs (unless paused)."""
        return self.state not in (STARTING, LOADING_MODEL, WAITING_FOR_MODEL, STOPPING) and not self.state.startswith(
            STOPPED
        )

    def set_state(self, state: str) -> None:
        """Set the state; ``idle`` while the inbox is missing is waiting for it (nothing can arrive meanwhile)."""
        self.state = WAITING_FOR_INBOX if state == IDLE and self.inbox_missing else state

    def summary(self) -> str:
        """One line for systemd's STATUS=."""
        if self.current is not None:
            job = self.current
            prefix = f"{STOPPING}, " if self.state == STOPPING else ""
            where = f"video {job.index}/{job.total}" if job.total else "preparing"
            percent = f" {job.percent:.0f}%" if job.percent is not None else ""
            stage = f" ({job.stage})" if job.stage and job.stage is not ProgressStage.RENDER else ""
            paused = ", paused: no new jobs after it" if self.paused else ""
            if self.tasks:
                where = "; ".join(task.describe() for task in self.tasks)
            if self.no_worker_online:
                where = f"{NO_WORKER_ONLINE}: its videos wait for a `heygemd worker`"
                percent = stage = ""
            return f"{prefix}job {job.job}: {where}{percent}{stage}; {len(self.queued)} queued{self._disk_note()}{paused}"
        waiting = f", {len(self.waiting_jobs)} waiting to retry" if self.waiting_jobs else ""
        if self.waiting_for_disk and self.state in (IDLE, WAITING_FOR_DISK):
            return f"{WAITING_FOR_DISK}: {self.waiting_for_disk[0].describe()}; {len(self.queued)} queued{waiting}"
        if self.state == PAUSED:
            return f"paused: no new jobs are taken (heygemd resume); {len(self.queued)} queued, {len(self.arriving)} arriving{waiting}"
        if self.state == IDLE and self.no_worker_online:
            return f"idle, {NO_WORKER_ONLINE} (start `heygemd worker`); {len(self.queued)} queued{waiting}"
        if self.state == IDLE:
            return f"idle; {len(self.queued)} queued, {len(self.arriving)} arriving{waiting}"
        if self.state == WAITING_FOR_MODEL:
            wanted = "; ".join(file.describe() for file in self.model_files) or "the model files"
            return f"{WAITING_FOR_MODEL} (loaded the moment they are valid, no restart): {wanted}; {len(self.queued)} queued"
        if self.state == WAITING_FOR_INBOX:
            return f"waiting for the inbox: {self.inbox or 'the inbox'} is missing (share unmounted?){waiting}"
        return self.state + waiting

    def _disk_note(self) -> str:
        return f", {len(self.waiting_for_disk)} {WAITING_FOR_DISK}" if self.waiting_for_disk else ""


class StatusFile:
    """Writes the status (rate-limited for progress updates; never fsynced: it is only a view)."""

    def __init__(self, state_dir: Path, min_interval: float = 1.0) -> None:
        self.path = state_dir / STATUS_FILE
        self.min_interval = min_interval
        self._last_write = 0.0
        self._lock = threading.Lock()  # cluster mode: the worker watch's thread writes it too

    def write(self, status: ServiceStatus, *, force: bool = True, blocking: bool = True) -> None:
        """``blocking=False`` is for a signal handler: it may have interrupted a write in this very thread, whose
        lock it would wait for for ever; it skips the write instead (the main loop writes the state next)."""
        if not self._lock.acquire(blocking=blocking):
            return
        try:
            now = time.monotonic()
            if not force and now - self._last_write < self.min_interval:
                return
            self._last_write = now
            status.updated_at = utc_now()
            try:
                write_atomic(self.path, display_json(status) + "\n", durable=False)
            except OSError:
                pass  # a full or read-only state disk must not stop the work; the journal write will report it
        finally:
            self._lock.release()


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
