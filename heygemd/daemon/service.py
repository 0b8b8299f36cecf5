"""`heygemd run`: the long-running service. Reads top to bottom:

start-up (logging, folders, warm engine, unfinished jobs from the journal) → READY=1 →
loop { reload if asked; run a claimed job whose turn came; claim the oldest ready folder the arrivals
thread found; sleep until something happens } → STOPPING=1.

The steps of one job live in runner.py, its state changes in lifecycle.py, its render step behind the
Renderer port (render_port.py, chosen at start-up by commands/service.py), and the watching of the
inbox (which never pauses, also while a job renders) in arrivals.py. Claimed jobs are this service's
alone (its journal, in its state folder): a restart resumes them. Several GPUs or hosts on one inbox
are cluster mode (heygemd/cluster/): one coordinator `heygemd run`, one `heygemd worker` per GPU.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from heygemd import __version__
from heygemd.atomic import write_atomic
from heygemd.codes import ErrorCode, Failure
from heygemd.control import CancelRequest, ControlState, cancel_honoured
from heygemd.daemon.arrivals import Arrivals, WatchingStopped
from heygemd.daemon.claim import OWNER_FILE, ClaimError, WorkArea, claim
from heygemd.daemon.config import (
    ConfigError,
    HeygemdConfig,
    LoadedConfig,
    LogConfig,
    load_config,
)
from heygemd.daemon.control_reader import (
    CONTROL_POLL_SECONDS,
    CancelSorter,
    ClaimedJob,
    ControlReader,
)
from heygemd.daemon.diskspace import DiskGuard
from heygemd.daemon.engine_start import start_engine, with_state_defaults
from heygemd.daemon.fsutil import (
    is_network_filesystem,
    move_without_overwrite,
    remove_tree,
    same_filesystem,
)
from heygemd.daemon.journal import JobRecord, Journal, Phase, VideoRecord
from heygemd.daemon.leftovers import clean_leftovers
from heygemd.daemon.lifecycle import Lifecycle, RetryPolicy
from heygemd.daemon.logs import configure_logging, get_logger
from heygemd.daemon.metrics_recorder import MetricsRecorder
from heygemd.daemon.model_wait import POLL_SECONDS, ModelWait
from heygemd.daemon.notify import Notifier
from heygemd.daemon.openfiles import OpenFileProbe, probe_capability
from heygemd.daemon.outputs import Destinations
from heygemd.daemon.readiness import InboxScan, ReadinessTracker
from heygemd.daemon.render_port import RenderEngine, Renderer, RendererChoice, RendererStart
from heygemd.daemon.reports import host_name, utc_now
from heygemd.daemon.retention import RetentionClock, apply_retention
from heygemd.daemon.runner import JobRunner, RenderContext, StepKind
from heygemd.daemon.servicelock import ServiceLock, ServiceLockHeld
from heygemd.daemon.signals import ServiceSignals
from heygemd.daemon.status import (
    IDLE,
    LOADING_MODEL,
    PAUSED,
    STANDBY,
    STOPPED,
    STOPPING,
    WAITING_FOR_DISK,
    WAITING_FOR_MODEL,
    WORKING,
    ClusterWorker,
    CurrentJob,
    ServiceStatus,
    StatusFile,
    WaitingJob,
    WorkerTask,
    service_name,
)
from heygemd.daemon.supervise import RenderHung
from heygemd.daemon.webhooks import WebhookSender
from heygemd.engine import (
    EngineError,
    EngineInfo,
    EngineSettings,
    RenderProgress,
    RenderReport,
)
from heygemd.engine.snapshot import remove_leftovers
from heygemd.exitcodes import ExitCode

STOP_MARGIN_SECONDS = 15.0  # asked of systemd on top of the grace, for publishing and exit
CLAIM_RETRY_SECONDS = 60.0  # a folder that could not be claimed (permissions, the share) is tried again after this
MAX_CRASHES = 5  # a job the service keeps dying on (out of memory, a bug) goes to quarantine instead of looping
# A model build still running after this is taken as hung: its watchdog pings stop and systemd restarts the service.
MODEL_BUILD_LIMIT_SECONDS = 900.0
PROGRESS_STATUS_SECONDS = 1.0  # the status is written at most this often while a render reports progress


@dataclass
class _Queued:
    record: JobRecord
    not_before: float = 0.0  # time.monotonic()
    waiting_for: Failure | None = None
    retry_at: datetime | None = None


class Service:
    def __init__(self, loaded: LoadedConfig, explicit_config: Path | None, choose_renderer: RendererChoice) -> None:
        self.explicit_config = explicit_config
        self.choose_renderer = choose_renderer
        self.config_source = loaded.source
        self.config: HeygemdConfig = loaded.config
        self.log = get_logger("heygemd.daemon")
        self.wake = threading.Event()
        self.signals = ServiceSignals(self.wake)
        self.notifier = Notifier()
        self.cancel_render = threading.Event()
        self.rendering = False
        self._grace_timer: threading.Timer | None = None
        self.engine: RenderEngine | None = None  # heygemd.engine.LipSyncEngine, imported lazily (torch)
        self.model_wait: ModelWait[RenderEngine] | None = (
            None  # while the weights are missing or unusable: builds the engine
        )
        self.renderer: Renderer | None = None  # chosen at start-up: the local engine, or the cluster's workers
        self.queue: list[_Queued] = []
        self._claim_retry_after: dict[str, float] = {}
        self._last_progress_status = 0.0
        self.service_id = service_id()
        self.retention_clock = RetentionClock()
        self.started_at = time.time()
        self.status = ServiceStatus(
            name=service_name(self.config.service.name, self.config.paths.state),
            config_file=str(self.config_source) if self.config_source else None,
            owner=self.service_id,
        )
        self.controls = ControlReader(loaded.config.paths.state)
        self.cancels = CancelSorter()
        self.metrics: MetricsRecorder | None = None  # made once the state folder is known to be writable
        self.webhooks = WebhookSender(self.config.notify, self.config.web.public_url, loaded.config.paths.state)
        self._apply_paths()
        self.arrivals = self._make_arrivals()

    # ------------------------------------------------------------------ configuration

    def _apply_paths(self) -> None:
        paths, service = self.config.paths, self.config.service
        self.inbox = paths.inbox
        self.work = WorkArea(paths.work)
        self.dest = Destinations(paths, self.work)
        self.journal = Journal(
            paths.state,
            service.history_size,
        )
        policy = RetryPolicy(
            service.retry_attempts,
            service.retry_budget_seconds,
            service.retry_first_delay_seconds,
            service.retry_max_delay_seconds,
        )
        self.lifecycle = Lifecycle(self.journal, policy, MAX_CRASHES)
        self.status_file = StatusFile(paths.state)
        self.disk = DiskGuard(paths, self.config.outputs, self.log, self.config.limits.max_file_bytes)
        self.webhooks.configure(self.config.notify, self.config.web.public_url)
        if self.metrics is not None:
            self.metrics.paths = paths

    def _make_arrivals(self) -> Arrivals:
        watch = self.config.watch
        arrivals = Arrivals(self.inbox, watch, self._make_tracker(), self.wake)
        arrivals.on_scan = self._on_scan
        return arrivals

    def _make_tracker(self) -> ReadinessTracker:
        from heygemd.daemon.watcher import choose_watch_mode

        watch = self.config.watch
        network = is_network_filesystem(choose_watch_mode(self.inbox, watch.mode).filesystem)
        return ReadinessTracker(
            readiness=watch.readiness,
            marker_name=watch.marker_name,
            settle_seconds=watch.network_settle_seconds if network else watch.settle_seconds,
            abandon_after_seconds=watch.abandon_after_seconds,
            probe=OpenFileProbe(network=network),
        )

    def _runner(self) -> JobRunner:
        assert self.renderer is not None
        context = RenderContext(
            self.signals.stop_requested, self.cancel_render, self, self._cancel_request, self._on_rendered
        )
        # Asked for a job report only: a job cancelled while the service waits for its model files ends without one.
        engine_info = self._workers_engine if self.cluster else lambda: self._warm_engine().describe()
        return JobRunner(self.config, self.renderer, engine_info, self.lifecycle, self.dest, context)

    @property
    def cluster(self) -> bool:
        """Cluster mode: the videos render on `heygemd worker`s; this process loads no model."""
        return self.config.cluster.broker_url is not None

    def _workers_engine(self) -> EngineInfo:
        """Cluster mode: the engine an online worker published (the workers of a queue share one configuration)."""
        if self.status.engine is not None:
            return self.status.engine
        settings = self.config.engine
        return EngineInfo(
            heygemd_version=__version__,
            device="cluster workers",
            dry_run=settings.dry_run,
            batch_size=settings.batch_size,
            encoder="chosen by each worker",
        )

    def _show_workers(self, workers: list[ClusterWorker]) -> None:
        """From the coordinator's worker watch (cluster/presence.py): the workers into the status."""
        before = [(worker.name, worker.online, worker.task is None) for worker in self.status.workers]
        after = [(worker.name, worker.online, worker.task is None) for worker in workers]
        online = next((worker for worker in workers if worker.online and worker.engine is not None), None)
        if online is not None and online.engine != self.status.engine:
            self.status.engine = online.engine
            self.status.dry_run = online.engine.dry_run if online.engine else False
        self.status.workers = workers
        if before != after:
            self.log.info("cluster workers", online=sum(worker.online for worker in workers), known=len(workers))
            self.notifier.status(self.status.summary())  # systemd's STATUS= says "no worker online", or no longer
        self.status_file.write(self.status, force=before != after)

    def _warm_engine(self) -> RenderEngine:
        assert self.engine is not None
        return self.engine

    # ------------------------------------------------------------------ the service

    def run(self) -> int:
        self.signals.on_stop = self._on_stop_signal
        self.signals.install()
        self.log.info(
            "heygemd starting",
            service=self.status.name,
            config=str(self.config_source) if self.config_source else "defaults (no config file found)",
            cwd=os.getcwd(),
            inbox=str(self.inbox),
            pid=os.getpid(),
            owner=self.service_id,
        )
        try:
            self.config.paths.state.mkdir(parents=True, exist_ok=True)
            write_atomic(self.config.paths.state / ".writable", "", durable=False)
        except OSError as err:
            self.log.error("the state folder cannot be written", path=str(self.config.paths.state), error=err.strerror)
            return ExitCode.CANT_CREATE
        self.metrics = MetricsRecorder(self.config.paths.state, self.config.paths)
        problem = self._check_shared_filesystem()
        if problem:
            self.log.error(problem)
            return ExitCode.CONFIG

        try:
            if self.cluster:  # the workers load the model and publish what they loaded; this process probes inputs
                _check_media_tools()
            else:
                self._set_state(LOADING_MODEL)
                self._try_model()
        except EngineError as err:
            self.log.error("the engine cannot start", error=str(err))
            self._set_state(f"{STOPPED}: engine cannot start")
            return ExitCode.MISSING_WEIGHTS
        self.status.cluster = self.cluster
        self.renderer = self.choose_renderer(
            RendererStart(
                self.config,
                self._warm_engine,
                self.service_id,
                self.signals.stop_requested,
                on_standby=lambda holder: self._set_state(STANDBY),
                on_lost=self._coordinator_lost,
                on_workers=self._show_workers,
            )
        )
        if self.renderer is None:
            return ExitCode.OK  # stopped while standing by

        self._clean_leftovers()  # only now, under the service lock: no live service of this state folder writes them
        self.webhooks.start()
        self._recover_unfinished_jobs()
        self._describe_watch()
        self.arrivals.start()
        self._set_state(IDLE if self.engine is not None or self.cluster else WAITING_FOR_MODEL)
        self.notifier.ready(self.status.summary())
        self.log.info(
            "ready",
            watch_mode=self.arrivals.watcher.plan.mode.value,
            readiness=self.config.watch.readiness.value,
            waiting_for_model=self.engine is None and not self.cluster,
        )

        try:
            self._loop()
        except RenderHung as hung:
            self.log.error(
                "a render hung and could not be stopped; exiting so that systemd restarts the service", reason=str(hung)
            )
            return ExitCode.RENDER_HUNG
        except WatchingStopped as died:
            self.log.error("the service no longer watches the inbox; exiting so that systemd restarts it", reason=str(died))
            return ExitCode.THREAD_DIED
        finally:
            self.arrivals.stop()
            self.webhooks.stop()
        self._set_state(STOPPED)
        self.log.info("stopped", claimed_jobs_left=len(self.journal.records()))
        return ExitCode.OK

    def _loop(self) -> None:
        while not self.signals.stop_requested.is_set():
            if self.signals.reload_requested.is_set():
                self.signals.reload_requested.clear()
                self._reload()
            self.arrivals.check_alive()
            self.notifier.watchdog()

            now = time.monotonic()
            if self.retention_clock.due(now):
                apply_retention(self.config.paths, self.config.outputs.keep_days, self.log)
            if (
                self.engine is None and not self.cluster
            ):  # jobs stay queued (in the inbox, in the journal) until the model loads; a cancelled one leaves at once
                if not (self._honour_cancels() or self._take_cancelled()):
                    self._wait_for_model()
                continue
            if self._honour_cancels():
                continue
            runnable = next((item for item in self.queue if item.not_before <= now), None)
            if runnable is not None:
                self.queue.remove(runnable)
                self._process(runnable.record)
                continue
            scan = self.arrivals.latest()
            self.status.inbox_missing = scan.inbox_missing
            if not self.status.paused and (self._take_abandoned(scan) or self._take_next_ready(scan)):
                continue
            self._set_state(PAUSED if self.status.paused else WAITING_FOR_DISK if self.disk.waiting else IDLE)
            timeout = self.config.watch.rescan_interval_seconds
            if self.queue:
                timeout = min(timeout, max(0.1, min(item.not_before for item in self.queue) - now))
            if scan.ready:  # a ready folder that could not be claimed yet
                timeout = min(timeout, self.config.watch.scan_interval_seconds)
            self._sleep(timeout)

    def _sleep(self, seconds: float) -> None:
        interval = self.notifier.watchdog_interval
        deadline = time.monotonic() + seconds
        while not self.signals.stop_requested.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.wake.wait(min(remaining, interval or CONTROL_POLL_SECONDS, CONTROL_POLL_SECONDS)):
                self.wake.clear()
                return  # a folder became ready, a signal came: look now
            self.arrivals.check_alive()
            self.notifier.watchdog()
            if self.controls.changed():
                return  # a pause, a resume or a cancel: look now

    # ------------------------------------------------------------------ the inbox

    def _on_scan(self, scan: InboxScan) -> None:
        """From the arrivals thread: keep the status's view of the inbox current, also while rendering."""
        self._show_inbox(scan)
        if not self.rendering and not scan.ready and not scan.abandoned:
            self.status_file.write(self.status, force=False)
            self._publish_gauges()

    def _show_inbox(self, scan: InboxScan) -> None:
        self.status.arriving = list(scan.waiting)
        self.status.waiting_for = {folder.name: folder.reason for folder in scan.arriving}
        self.status.queued = [item.record.name for item in self.queue] + [folder.name for folder in scan.ready]

    def _take_abandoned(self, scan: InboxScan) -> bool:
        for folder in scan.abandoned:
            record = self._claim(folder.name)
            if record is None:
                continue
            self.lifecycle.fail_job(record, folder.failure)  # straight to quarantine
            self._process(record)
            return True
        return False

    def _take_next_ready(self, scan: InboxScan) -> bool:
        now = time.monotonic()
        self.disk.keep_only(folder.name for folder in scan.ready)
        for folder in scan.ready:
            if self._claim_retry_after.get(folder.name, 0) > now or not self.disk.admits(folder.name):
                continue
            record = self._claim(folder.name)
            if record is not None:
                self._process(record)
                return True
        return False

    def _claim(self, name: str) -> JobRecord | None:
        try:
            self.dest.ensure()
            record = claim(self.inbox, name, self.work, self.lifecycle, self.arrivals.first_seen(name))
        except (ClaimError, OSError) as err:
            self.log.error("cannot claim the job folder; will try again later", job=name, error=str(err))
            self._claim_retry_after[name] = time.monotonic() + CLAIM_RETRY_SECONDS
            return None
        self.arrivals.claimed(name)
        self._show_inbox(self.arrivals.latest())  # not queued any more, even before the next scan
        self._claim_retry_after.pop(name, None)
        if record is not None:
            self.log.info("job claimed", job=name, job_id=record.job_id)
        return record

    # ------------------------------------------------------------------ pause, resume, cancel (control.json)

    def _control(self) -> ControlState:
        control = self.controls.current()
        if control.paused != self.status.paused:
            self.status.paused = control.paused
            self.log.info(
                "paused: no new jobs are taken; the current one finishes"
                if control.paused
                else "resumed: new jobs are taken again"
            )
        return control

    def _cancel_request(self, record: JobRecord) -> CancelRequest | None:
        return self._control().wants_cancelled(record.name, record.job_id)

    def _honour_cancels(self) -> bool:
        """Bring a cancelled claimed job's turn forward, or claim a cancelled inbox folder (the runner then
        quarantines either first thing). True if a job was worked on."""
        requests = self._control().cancel
        if not requests:
            return False
        scan = self.arrivals.latest()
        claimed = [
            ClaimedJob(item.record.name, item.record.job_id, item.record.phase is not Phase.PUBLISHING)
            for item in self.queue
        ]
        inbox = [folder.name for folder in scan.ready] + [folder.name for folder in scan.abandoned] + scan.waiting
        plan = self.cancels.sort(requests, claimed, inbox, time.monotonic())
        for item in self.queue:
            if item.record.job_id in plan.claimed:
                item.not_before = 0.0
        for request in plan.stale:
            self.log.warning("cancel request dropped: this service has no such job", job=request.job)
            with contextlib.suppress(OSError):  # a full state disk: dropped at the next look, the loop goes on
                cancel_honoured(self.config.paths.state, request.job)
        for name in plan.inbox:
            record = self._claim(name)
            if record is not None:
                self._process(record)
                return True
        return False

    def _take_cancelled(self) -> bool:
        """A claimed job of the queue that a person cancelled, worked on now: the runner quarantines it first thing,
        with no render (while the service waits for its model files, the queue is not taken otherwise)."""
        cancelled = next(
            (
                item
                for item in self.queue
                if item.record.phase in (Phase.CLAIMED, Phase.RENDERING) and self._cancel_request(item.record) is not None
            ),
            None,
        )
        if cancelled is None:
            return False
        self.queue.remove(cancelled)
        self._process(cancelled.record)
        return True

    def _answer_cancel(self, record: JobRecord) -> None:
        """The job ended: a cancel request for it is answered (honoured, or too late: it was being published)."""
        if self.controls.current().wants_cancelled(record.name, record.job_id) is None:
            return
        if record.failure is None or record.failure.code is not ErrorCode.CANCELLED:
            self.log.warning("cancel request came too late: the job was already being published", job=record.name)
        cancel_honoured(self.config.paths.state, record.name, record.job_id)

    # ------------------------------------------------------------------ one job

    def _process(self, record: JobRecord) -> None:
        with structlog.contextvars.bound_contextvars(job=record.name):
            self._work_on(record)

    def _work_on(self, record: JobRecord) -> None:
        self.status.current = CurrentJob(job=record.name, job_id=record.job_id)
        self.status.waiting_jobs = [job for job in self.status.waiting_jobs if job.job_id != record.job_id]
        self._set_state(WORKING)
        try:
            step = self._runner().work_on(record)
        except RenderHung:
            self.lifecycle.pause(record)
            raise
        except Exception as err:  # a defect: the job must end all the same, never loop
            self.log.exception("internal error while working on the job")
            self._internal_error(record, err)
            return
        finally:
            self.rendering = False
            if self._grace_timer is not None:
                self._grace_timer.cancel()
            self.status.current = None
            self._set_state(IDLE)
        if step.kind is StepKind.DONE:
            try:
                self._finish(record)
            except OSError as err:  # the state folder's disk is full or failing: finishing is tried again
                self.log.warning("the job's end cannot be recorded yet; tried again later", error=err.strerror or str(err))
                self._queue(record, time.monotonic() + self.config.service.retry_max_delay_seconds)
        elif step.kind is StepKind.RETRY:
            assert step.retry_at is not None
            self._queue(
                record, time.monotonic() + max(0.0, (step.retry_at - utc_now()).total_seconds()), step.failure, step.retry_at
            )
        # StepKind.STOPPED: the record stays in the journal, resumed at the next start

    def _internal_error(self, record: JobRecord, err: Exception) -> None:
        failure = Failure(
            code=ErrorCode.INTERNAL,
            reason=f"heygemd failed on this job: {type(err).__name__}: {err}",
            details=["the service log (journalctl -u heygemd) has the details"],
        )
        try:
            if record.phase is Phase.PUBLISHING:
                retry_at = self.lifecycle.job_transient(record, failure) or utc_now()
                self._queue(record, time.monotonic() + self.config.service.retry_max_delay_seconds, failure, retry_at)
            else:
                self.lifecycle.fail_job(record, failure)
                self._queue(record)  # straight to quarantine
        except OSError:
            self._queue(record, time.monotonic() + CLAIM_RETRY_SECONDS)

    def _queue(
        self, record: JobRecord, not_before: float = 0.0, failure: Failure | None = None, retry_at: datetime | None = None
    ) -> None:
        self.queue.append(_Queued(record, not_before, failure, retry_at))
        if failure is not None:
            self.status.waiting_jobs = [job for job in self.status.waiting_jobs if job.job_id != record.job_id] + [
                WaitingJob(
                    job=record.name,
                    job_id=record.job_id,
                    code=failure.code,
                    reason=failure.reason,
                    retry_at=retry_at,
                    failures=record.retry.failures,
                    max_failures=self.config.service.retry_attempts,
                )
            ]

    # ------------------------------------------------------------------ progress of the current render

    # The service is its renderer's RenderObserver (daemon/render_port.py): video_started, progress, tasks.

    def video_started(self, record: JobRecord, video: VideoRecord, index: int, total: int) -> None:
        self.status.current = CurrentJob(
            job=record.name, job_id=record.job_id, video=video.template, index=index, total=total, percent=0.0
        )
        self.rendering = True
        self._set_state(WORKING)

    def tasks(self, tasks: list[WorkerTask]) -> None:
        """Cluster mode: the job's tasks into the status, at most once a second; keeps the watchdog fed (while the
        inbox is watched, as progress() does)."""
        if self.arrivals.alive:
            self.notifier.watchdog()
        self.status.tasks = tasks
        self._show_progress(done=not tasks)

    def _on_rendered(self, report: RenderReport, seconds: float) -> None:
        assert self.metrics is not None
        self.metrics.rendered(report, seconds)

    def progress(self, progress: RenderProgress) -> None:
        if self.arrivals.alive:  # the render is making progress and the inbox is watched: the service is healthy
            self.notifier.watchdog()
        current = self.status.current
        if current is None:
            return
        current.advance(progress.frames_done, progress.frames_total, progress.stage)
        self._show_progress(done=progress.frames_done >= progress.frames_total)

    def _show_progress(self, done: bool) -> None:
        now = time.monotonic()
        if now - self._last_progress_status >= PROGRESS_STATUS_SECONDS or done:
            self._last_progress_status = now
            self._set_state(WORKING, force=False)

    def _coordinator_lost(self) -> None:
        """Cluster mode: another process holds the queue's coordinator lock now; this one stops."""
        self.signals.stop_requested.set()
        self.wake.set()

    # ------------------------------------------------------------------ the end of a job

    def _finish(self, record: JobRecord) -> None:
        # The record says DONE and the history has the job once, before anything is removed.
        if self.lifecycle.done(record):
            self._announce(record)
        self._answer_cancel(record)
        remove_tree(self.work.job_dir(record.job_id))
        self.journal.remove(record.job_id)

    def _announce(self, record: JobRecord) -> None:
        """Once per finished job (when its history line is written): the counters and the webhooks."""
        assert self.metrics is not None
        self.metrics.job_finished(record)
        self.webhooks.job_finished(record)

    # ------------------------------------------------------------------ start-up, reload, stop

    def _try_model(self) -> None:
        """Build the engine if its weight files are valid; else wait for them (``model_wait``), saying which file goes where.

        Raises EngineError when the engine cannot start for another reason (no ffmpeg): waiting would not help."""
        if self.model_wait is None:
            _check_media_tools()  # no weights would make the engine start without them
            self.model_wait = ModelWait(
                self.config.engine, self.config.models, self._load_engine, before_build=self._loading_model
            )
        engine = self.model_wait.try_build()
        missing = self.model_wait.missing
        if engine is None:
            if missing != self.status.model_files:
                self.status.model_files = list(missing)
                for file in missing:
                    self.log.warning(
                        "waiting for the model files",
                        file=file.label,
                        path=file.path,
                        problem=file.problem,
                        hint=file.describe(),
                    )
            return
        self.engine, self.model_wait, self.status.model_files = engine, None, []
        self._describe_engine()

    def _loading_model(self) -> None:
        if self.status.state == WAITING_FOR_MODEL:  # newly placed files, after READY=1: a load may take a while
            self.notifier.watchdog()  # so it starts with a fresh ping (at start-up, the pings begin after READY=1)
        self._set_state(LOADING_MODEL)

    def _wait_for_model(self) -> None:
        try:
            self._try_model()
        except EngineError as err:  # not a weight file: said once; tried again when the files change
            self.log.error("the engine cannot start; still waiting for a change of the model files", error=str(err))
        if self.engine is not None:
            self.log.info("the model files are in place; the engine is loaded and jobs are taken")
            self._set_state(IDLE)
            return
        self._set_state(WAITING_FOR_MODEL)
        self._sleep(POLL_SECONDS)

    def _load_engine(self, settings: EngineSettings) -> RenderEngine:
        """The engine built, the watchdog fed meanwhile: files placed after READY=1 are loaded in the loop's thread,
        and a build may outlast WatchdogSec (torch's import, a large checkpoint on a slow disk)."""
        with self.notifier.keep_alive(MODEL_BUILD_LIMIT_SECONDS):
            return start_engine(settings, self.config.paths.state)

    def _check_shared_filesystem(self) -> str | None:
        if not self.inbox.is_dir():
            return None  # an unmounted share is waited for, not an error
        try:
            self.work.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"the work folder {self.work.root} cannot be created: {err.strerror}"
        if not same_filesystem(self.inbox, self.work.root):
            return (
                f"paths.work ({self.work.root}) is not on the same filesystem as paths.inbox ({self.inbox}); "
                "a job is claimed by one rename, so put the work folder on the inbox's share"
            )
        return None

    def _recover_unfinished_jobs(self) -> None:
        for bad in self.journal.unreadable():
            aside = bad.with_suffix(".unreadable")
            os.replace(bad, aside)
            self.log.error("journal record unreadable; set aside, its work folder is left as is", record=str(aside))
        for done in self.journal.recover_finished():  # DONE records: the resume below clears their work folders
            self.log.info(
                "finished job recorded in the history after an interrupted finish", job=done.name, job_id=done.job_id
            )
            self._announce(done)
        known_ids = set()
        for record in self.journal.records():
            known_ids.add(record.job_id)
            with structlog.contextvars.bound_contextvars(job=record.name):
                if self.lifecycle.note_crash(record):
                    self.log.warning("the service stopped unexpectedly while working on this job", crashes=record.crashes)
                self.log.info("resuming a claimed job", job_id=record.job_id, phase=record.phase.value)
                retry_at = record.retry.next_attempt_at
                if retry_at is not None and retry_at > utc_now() and record.retry.last is not None:
                    wait = (retry_at - utc_now()).total_seconds()
                    self._queue(record, time.monotonic() + wait, record.retry.last, retry_at)
                else:
                    self._queue(record)
        self._return_orphans(known_ids)

    def _return_orphans(self, known_ids: set[str]) -> None:
        """Work folders of an older heygemd (owner.json) of this service without a journal record: back to the inbox.

        Other work folders without a record here are another service's (or a dead coordinator's on another host).
        """
        if not self.work.root.is_dir():
            return
        state = str(self.config.paths.state.resolve())
        for job_dir in sorted(self.work.root.iterdir()):
            if job_dir.name in known_ids or not job_dir.is_dir():
                continue
            try:
                owner = json.loads((job_dir / OWNER_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                owner = {}
            if owner.get("state") != state:
                continue  # another service's job (or not ours to judge)
            input_dir = self.work.input_dir(job_dir.name)
            if input_dir.is_dir() and self.inbox.is_dir():
                back = move_without_overwrite(input_dir, self.inbox, f"{job_dir.name}-recovered")
                self.log.warning(
                    "work folder without journal record; its job was put back in the inbox", inbox_folder=back.name
                )
            remove_tree(job_dir)

    def _clean_leftovers(self) -> None:
        settings = with_state_defaults(self.config.engine, self.config.paths.state)  # also while no engine is loaded
        extra = [self.journal.jobs_dir, settings.face_cache_dir]
        cleaned = clean_leftovers(self.config.paths, self.work, self.started_at, extra)
        if cleaned.removed or cleaned.failed:
            self.log.info(
                "temporary files left by a crash removed",
                removed=[str(path) for path in cleaned.removed],
                failed=[f"{path}: {why}" for path, why in cleaned.failed] or None,
            )
        # The audio snapshots of a killed render: in the folder the configuration gives, else the state folder's
        # own (engine_start's default). Never the system's temporary folder: it is not this service's alone.
        if settings.temp_dir is not None and settings.temp_dir.is_dir():
            snapshots = remove_leftovers(settings.temp_dir)
            if snapshots:
                self.log.info("audio snapshots left by a crash removed", folder=str(settings.temp_dir), count=snapshots)

    def _describe_engine(self) -> None:
        assert self.engine is not None
        info = self.engine.describe()
        self.status.engine = info
        self.status.dry_run = info.dry_run
        self.log.info("engine ready", **_flat_engine(info))

    def _describe_watch(self) -> None:
        plan = self.arrivals.watcher.plan
        self.status.inbox = str(self.inbox)
        self.status.watch_mode = plan.mode.value
        self.status.filesystem = plan.filesystem
        self.log.info(
            "watching the inbox",
            mode=plan.mode.value,
            filesystem=plan.filesystem,
            why=plan.reason,
            settle_s=self.arrivals.tracker.settle_seconds,
        )
        capability = probe_capability(self.inbox)
        report = self.log.info if capability.complete else self.log.warning
        report("open files", method=capability.method.value, detail=capability.detail)

    def _reload(self) -> None:
        self.notifier.reloading()
        self.log.info("reloading the configuration")
        try:
            loaded = load_config(self.explicit_config)
        except ConfigError as err:
            self.log.error("configuration reload failed; the running configuration stays", error=str(err))
            self.notifier.ready(self.status.summary())
            return
        new = loaded.config
        configure_logging(new.log)
        if new.paths.state != self.config.paths.state:
            self.log.warning("paths.state changes only at restart; the old state folder stays in use")
            new = new.model_copy(update={"paths": new.paths.model_copy(update={"state": self.config.paths.state})})
        if self.cluster:
            pass  # the workers load the model: each reloads with its own configuration
        elif self.engine is None and (new.engine != self.config.engine or new.models != self.config.models):
            self.model_wait = ModelWait(new.engine, new.models, self._load_engine, before_build=self._loading_model)
        elif new.engine != self.config.engine:
            self.engine = None  # free the GPU memory of the old model before loading the new one
            gc.collect()
            try:
                self.engine = self._load_engine(new.engine)
            except EngineError as err:
                self.log.error("the new engine settings do not load; the previous ones are loaded again", error=str(err))
                new = new.model_copy(update={"engine": self.config.engine})
                self.engine = self._load_engine(self.config.engine)
            self._describe_engine()
        self.arrivals.stop()
        self.config, self.config_source = new, loaded.source
        self._apply_paths()
        self.arrivals = self._make_arrivals()
        self._describe_watch()
        self.arrivals.start()
        self.status.config_file = str(loaded.source) if loaded.source else None
        self.log.info("configuration reloaded", config=str(loaded.source) if loaded.source else "defaults")
        self.notifier.ready(self.status.summary())

    def _on_stop_signal(self, count: int) -> None:
        # Runs in the main thread between bytecodes, possibly in the middle of a render.
        grace = self.config.service.stop_grace_seconds
        self.status.state = STOPPING
        self.status_file.write(self.status, blocking=False)
        if not self.rendering:
            self.log.info("stop requested")
            self.notifier.stopping("stopping")
            return
        if count == 1:
            self.log.info("stop requested; the current video may finish", grace_s=grace)
            self.notifier.stopping(
                f"stopping: finishing the current video (up to {grace:.0f} s)", grace + STOP_MARGIN_SECONDS
            )
            self._grace_timer = threading.Timer(grace, self.cancel_render.set)
            self._grace_timer.daemon = True
            self._grace_timer.start()
        else:
            self.log.info("stop requested again; abandoning the current video now")
            self.notifier.stopping("stopping now: abandoning the current video", STOP_MARGIN_SECONDS)
            self.cancel_render.set()

    # ------------------------------------------------------------------ status

    def _set_state(self, state: str, force: bool = True) -> None:
        if self.signals.stop_requested.is_set() and state in (IDLE, WORKING, WAITING_FOR_DISK, WAITING_FOR_MODEL):
            state = STOPPING
        self.status.set_state(state)
        self.status.waiting_for_disk = self.disk.waiting
        self.status_file.write(self.status, force=force)
        self._publish_gauges()
        if not self.signals.stop_requested.is_set():
            self.notifier.status(self.status.summary())

    def _publish_gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.gauges(
                up=not self.status.state.startswith(STOPPED),
                ready=self.status.ready,
                paused=self.status.paused,
                queue_length=len(self.status.queued),
                folders_arriving=len(self.status.arriving),
            )


def _flat_engine(info: EngineInfo) -> dict[str, object]:
    checkpoint = info.checkpoint
    return {
        "device": info.device,
        "dry_run": info.dry_run,
        "detector": info.detector,
        "checkpoint": str(checkpoint.path) if checkpoint else None,
        "checkpoint_name": checkpoint.known_name if checkpoint else None,
        "checkpoint_sha256": checkpoint.sha256[:16] if checkpoint else None,
        "restorer_sha256": info.restorer.sha256[:16] if info.restorer else None,
    }


def service_id() -> str:
    """This process's name in logs, status and the cluster's coordinator lock: pids are reused, the random part is not."""
    host = re.sub(r"[^A-Za-z0-9.]+", "_", host_name())[:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def run_service(explicit_config: Path | None, choose_renderer: RendererChoice) -> int:
    try:
        loaded = load_config(explicit_config)
    except ConfigError as err:
        configure_logging(LogConfig())
        get_logger("heygemd.daemon").error("configuration error", error=str(err))
        return ExitCode.CONFIG
    configure_logging(loaded.config.log)
    log, state = get_logger("heygemd.daemon"), loaded.config.paths.state
    try:
        service_lock = ServiceLock.acquire(state)
    except ServiceLockHeld as held:
        log.error(
            "another heygemd is running with this state folder; not starting", held_by_pid=held.pid, lock=str(held.path)
        )
        return ExitCode.ALREADY_RUNNING
    except OSError as err:
        log.error("the state folder cannot be written", path=str(state), error=err.strerror)
        return ExitCode.CANT_CREATE
    with service_lock:
        return Service(loaded, explicit_config, choose_renderer).run()


def _check_media_tools() -> None:
    """Raises FFmpegNotFound (an EngineError) unless ffmpeg and ffprobe are found: every input is probed with them."""
    from heygemd.engine.ffmpeg_tools import ffmpeg_path, ffprobe_path

    ffmpeg_path(), ffprobe_path()
