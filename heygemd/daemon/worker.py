"""`heygemd run`: the long-running service. Reads top to bottom:

start-up (logging, folders, warm engine, unfinished jobs from the journal) → READY=1 →
loop { reload if asked; resume claimed jobs; scan the inbox; take over jobs whose holder died;
claim the oldest ready folder; render its videos one by one; publish } → STOPPING=1 on SIGTERM.

A job moves through the journal phases claimed → rendering → publishing → done; each
phase can be repeated after a crash, so a restarted service finishes every claimed job.
Several services may share the inbox and work area: each holds its jobs with a lease (lease.py,
renewed by heartbeat.py), takes over jobs whose lease expired (takeover.py), and publishes only
after committing its lease, so a job is published once even if a stalled holder comes back.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from heygemd.daemon import lease
from heygemd.daemon.claim import OWNER_FILE, ClaimError, WorkArea, claim
from heygemd.daemon.config import ConfigError, HeygemdConfig, LoadedConfig, LogConfig, Readiness, load_config
from heygemd.daemon.contract import ContractViolation, JobPlan, plan_job
from heygemd.daemon.exitcodes import ExitCode
from heygemd.daemon.fsutil import is_network_filesystem, move_without_overwrite, remove_tree, same_filesystem, write_atomic
from heygemd.daemon.heartbeat import LeaseKeeper
from heygemd.daemon.journal import HistoryEntry, Journal, JobRecord, Phase, VideoRecord
from heygemd.daemon.lease import LeaseLost, Owner
from heygemd.daemon.logs import configure_logging, get_logger
from heygemd.daemon.notify import Notifier
from heygemd.daemon.openfiles import OpenFileProbe, probe_capability
from heygemd.daemon.outputs import (
    JOB_REPORT,
    Destinations,
    dispose_inputs,
    keep_only,
    publish_outbox_folder,
    quarantine_failed_videos,
    quarantine_whole_job,
    write_zip_bundle,
)
from heygemd.daemon.readiness import InboxScan, ReadinessTracker
from heygemd.daemon.reports import ErrorReport, FailedVideo, JobReport, JobStatus, VideoResult, VideoStatus, utc_now
from heygemd.daemon.signals import ServiceSignals
from heygemd.daemon.status import CurrentJob, ServiceStatus, StatusFile
from heygemd.daemon.takeover import RecordMirror, Takeover
from heygemd.daemon.watcher import InboxWatcher
from heygemd.engine import (
    CheckpointError,
    EngineError,
    EngineSettings,
    MediaError,
    RenderCancelled,
    RenderProgress,
    RenderReport,
)

STOP_MARGIN_SECONDS = 15.0  # asked of systemd on top of the grace, for publishing and exit
RETRY_STUCK_SECONDS = 60.0  # a job hit by a filesystem error (share gone, disk full) is tried again after this
MAX_ATTEMPTS = 5  # a job the service keeps dying on (out of memory, a bug) goes to quarantine instead of looping


@dataclass
class _Queued:
    record: JobRecord
    not_before: float = 0.0


class Service:
    def __init__(self, loaded: LoadedConfig, explicit_config: Path | None) -> None:
        self.explicit_config = explicit_config
        self.config_source = loaded.source
        self.config: HeygemdConfig = loaded.config
        self.log = get_logger("heygemd.daemon")
        self.wake = threading.Event()
        self.signals = ServiceSignals(self.wake)
        self.notifier = Notifier()
        self.cancel_render = threading.Event()
        self.rendering = False
        self._grace_timer: threading.Timer | None = None
        self.engine = None  # heygemd.engine.LipSyncEngine, imported lazily (torch)
        self.queue: list[_Queued] = []
        self._claim_retry_after: dict[str, float] = {}
        self._inbox_missing_reported = False
        self._last_progress_status = 0.0
        self.owner = Owner.current(loaded.config.paths.state)
        self.keeper = LeaseKeeper(self.owner, self.config.service.lease_seconds)
        self._apply_paths()
        self.tracker = self._make_tracker()
        self.status = ServiceStatus(config_file=str(self.config_source) if self.config_source else None, owner=self.owner.id)

    # ------------------------------------------------------------------ configuration

    def _apply_paths(self) -> None:
        paths = self.config.paths
        self.inbox = paths.inbox
        self.work = WorkArea(paths.work)
        self.dest = Destinations(paths, self.work)
        self.journal = Journal(paths.state, self.config.service.history_size, mirror=RecordMirror(self.work, self.owner))
        self.status_file = StatusFile(paths.state)
        self.keeper.lease_seconds = self.config.service.lease_seconds
        self.takeover = Takeover(self.work, self.owner, self.keeper, self.config.service.lease_seconds)

    def _make_tracker(self) -> ReadinessTracker:
        watch = self.config.watch
        self.watcher = InboxWatcher(self.inbox, watch.mode, watch.poll_interval_seconds, self.wake)
        network = is_network_filesystem(self.watcher.plan.filesystem)
        settle = watch.network_settle_seconds if network else watch.settle_seconds
        return ReadinessTracker(
            readiness=watch.readiness,
            marker_name=watch.marker_name,
            settle_seconds=settle,
            abandon_after_seconds=watch.abandon_after_seconds,
            probe=OpenFileProbe(network=network),
        )

    # ------------------------------------------------------------------ the service

    def run(self) -> int:
        self.signals.on_stop = self._on_stop_signal
        self.signals.install()
        self.log.info(
            "heygemd starting",
            config=str(self.config_source) if self.config_source else "defaults (no config file found)",
            cwd=os.getcwd(),
            inbox=str(self.inbox),
            pid=os.getpid(),
            owner=self.owner.id,
        )
        try:
            self.config.paths.state.mkdir(parents=True, exist_ok=True)
            write_atomic(self.config.paths.state / ".writable", "", durable=False)
        except OSError as err:
            self.log.error("the state folder cannot be written", path=str(self.config.paths.state), error=err.strerror)
            return ExitCode.CANT_CREATE
        problem = self._check_shared_filesystem()
        if problem:
            self.log.error(problem)
            return ExitCode.CONFIG

        self._set_state("loading model")
        try:
            self.engine = self._load_engine(self.config.engine)
        except CheckpointError as err:
            self.log.error("the model cannot be loaded", error=str(err), hint="run `heygemd fetch-models` or `heygemd doctor`")
            self._set_state("stopped: model cannot be loaded")
            return ExitCode.MISSING_WEIGHTS
        except EngineError as err:
            self.log.error("the engine cannot start", error=str(err))
            self._set_state("stopped: engine cannot start")
            return ExitCode.MISSING_WEIGHTS
        engine_info = self.engine.describe()
        self.status.engine = engine_info
        self.status.dry_run = bool(engine_info.get("dry_run"))
        self.log.info("engine ready", **_flat_engine(engine_info))

        self._recover_unfinished_jobs()
        self.keeper.start()
        self._describe_watch()
        self.watcher.ensure_running()
        self._set_state("idle")
        self.notifier.ready(self.status.summary())
        self.log.info("ready", watch_mode=self.watcher.plan.mode.value, readiness=self.config.watch.readiness.value)

        self._loop()

        self.watcher.stop()
        self.keeper.stop()  # the jobs left claimed are taken over by another service once their leases expire
        self._set_state("stopped")
        self.log.info("stopped", claimed_jobs_left=len(self.journal.records()))
        return ExitCode.OK

    def _loop(self) -> None:
        last_scan = -1e9
        last_full_scan = -1e9
        scan = InboxScan()
        while not self.signals.stop_requested.is_set():
            if self.signals.reload_requested.is_set():
                self.signals.reload_requested.clear()
                self._reload()
            self.notifier.watchdog()

            now = time.monotonic()
            runnable = next((item for item in self.queue if item.not_before <= now), None)
            if runnable is not None:
                self.queue.remove(runnable)
                self._process(runnable.record)
                continue

            since_scan = now - last_scan
            if since_scan < self.config.watch.scan_interval_seconds:  # events come in floods while files copy
                self._sleep(self.config.watch.scan_interval_seconds - since_scan)
                continue
            last_scan = now
            if now - last_full_scan >= self.config.watch.rescan_interval_seconds:
                last_full_scan = now
                self.watcher.ensure_running()
            scan = self._scan_inbox()
            if self._take_over_expired() or self._take_abandoned(scan) or self._take_next_ready(scan):
                continue
            self._set_state("idle")
            if scan.waiting:
                timeout = self.config.watch.scan_interval_seconds
            elif scan.inbox_missing:  # no observer can tell us when the share is back
                timeout = self.config.watch.poll_interval_seconds
            else:
                timeout = self.config.watch.rescan_interval_seconds
            if self.queue:
                timeout = min(timeout, max(0.1, min(item.not_before for item in self.queue) - now))
            timeout = min(timeout, self.config.service.lease_seconds / 4)  # look at other services' leases
            self._sleep(timeout)
            self.wake.clear()

    def _sleep(self, seconds: float) -> None:
        interval = self.notifier.watchdog_interval
        deadline = time.monotonic() + seconds
        while not self.signals.stop_requested.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.wake.wait(min(remaining, interval) if interval else remaining):
                if self.signals.stop_requested.is_set() or self.signals.reload_requested.is_set():
                    return
                # a filesystem event: scan soon, but let the rest of the burst arrive first
                self.wake.clear()
                deadline = min(deadline, time.monotonic() + self.config.watch.scan_interval_seconds)
            self.notifier.watchdog()

    # ------------------------------------------------------------------ the inbox

    def _scan_inbox(self) -> InboxScan:
        scan = self.tracker.scan(self.inbox, time.monotonic())
        if scan.inbox_missing:
            if not self._inbox_missing_reported:
                self._inbox_missing_reported = True
                self.log.warning(
                    "inbox is missing (share unmounted?); waiting for it, nothing is concluded meanwhile",
                    inbox=str(self.inbox),
                )
                self.watcher.stop()
            self.status.queued, self.status.arriving = [], []
            self._set_state("waiting for inbox")
            return scan
        if self._inbox_missing_reported:
            self._inbox_missing_reported = False
            self.log.info("inbox is back", inbox=str(self.inbox))
            self.watcher.ensure_running()
        for name in scan.new_loose_entries:
            self.log.warning(
                "loose entry at the inbox root left alone; jobs must be folders", entry=name, inbox=str(self.inbox)
            )
        self.status.queued = [item.record.name for item in self.queue] + [folder.name for folder in scan.ready]
        self.status.arriving = scan.waiting
        self.status.waiting_for = {folder.name: folder.reason for folder in scan.arriving}
        return scan

    def _take_abandoned(self, scan: InboxScan) -> bool:
        for folder in scan.abandoned:
            record = self._claim(folder.name)
            if record is None:
                continue
            record.abandoned_reason = folder.reason
            record.abandoned_details = folder.details  # journaled by _process, first thing
            self._process(record)
            return True
        return False

    def _take_next_ready(self, scan: InboxScan) -> bool:
        now = time.monotonic()
        for folder in scan.ready:
            if self._claim_retry_after.get(folder.name, 0) > now:
                continue
            record = self._claim(folder.name)
            if record is not None:
                self._process(record)
                return True
        return False

    def _claim(self, name: str) -> JobRecord | None:
        try:
            self.dest.ensure()
            record = claim(self.inbox, name, self.work, self.journal, self.owner)
        except (ClaimError, OSError) as err:
            self.log.error("cannot claim the job folder; will try again later", job=name, error=str(err))
            self._claim_retry_after[name] = time.monotonic() + self.config.watch.rescan_interval_seconds
            return None
        self.tracker.forget(name)
        self._claim_retry_after.pop(name, None)
        if record is not None:
            self.keeper.hold(self.work.job_dir(record.job_id), name)
            self.log.info("job claimed", job=name, job_id=record.job_id)
        return record

    # ------------------------------------------------------------------ other services' jobs

    def _take_over_expired(self) -> bool:
        """Finish a job whose holder stopped renewing its lease (killed, crashed, its machine gone)."""
        try:
            expired = self.takeover.expired_leases(time.monotonic())
        except OSError as err:
            self.log.warning("cannot look at the leases in the work folder", error=str(err))
            return False
        for lease_seen in expired:
            record = self._take_over(lease_seen)
            if record is not None:
                self._process(record)  # journaled there, first thing
                return True
        return False

    def _take_over(self, expired: lease.Lease) -> JobRecord | None:
        with structlog.contextvars.bound_contextvars(job=str(expired.info.get("job") or expired.job_dir.name)):
            try:
                outcome = self.takeover.take_over(expired)
            except OSError as err:
                self.log.error("cannot take over a job whose holder stopped; will try again", error=str(err))
                return None
            if outcome.record is None:
                self.log.info("expired lease handled; nothing left to do", reason=outcome.reason, previous_owner=expired.owner_id)
                return None
            record = outcome.record
            self.queue = [item for item in self.queue if item.record.job_id != record.job_id]
            self.log.warning(
                "job taken over from a service that stopped renewing its lease",
                job_id=record.job_id, previous_owner=expired.owner_id, phase=record.phase.value, lease_was=expired.kind.value,
            )
            return record

    # ------------------------------------------------------------------ one job

    def _process(self, record: JobRecord) -> None:
        with structlog.contextvars.bound_contextvars(job=record.name):
            try:
                held = self._hold(record)
            except OSError as err:
                self._retry_later(record, err)
                return
            if held is not None:
                self._work_on(held)

    def _work_on(self, record: JobRecord) -> None:
        self.status.current = CurrentJob(job=record.name, job_id=record.job_id)
        self._set_state("working")
        try:
            self._count_attempt(record)
            if record.phase is Phase.CLAIMED:
                self._plan(record)
            if record.phase is Phase.RENDERING:
                self._render_videos(record)
            if record.phase is Phase.PUBLISHING:
                self._publish(record)
            elif self.signals.stop_requested.is_set():
                record.attempts -= 1  # a clean stop is not a failed attempt
                self.journal.save(record)
        except LeaseLost:
            self._drop(record, "another service took the job over while this one was stalled")
        except OSError as err:
            if self._lease_gone(record):
                self._drop(record, "another service took the job over (or finished it) meanwhile")
            else:
                record.attempts -= 1  # the share or the disk, not the job: no attempt is used up
                self._retry_later(record, err)
        except Exception:
            self.log.exception("internal error; the job stays claimed and is tried again", attempt=record.attempts)
            self.queue.append(_Queued(record, time.monotonic() + RETRY_STUCK_SECONDS))
        finally:
            self.status.current = None
            self._set_state("idle")

    def _count_attempt(self, record: JobRecord) -> None:
        record.attempts += 1
        self.journal.save(record)
        if record.attempts > MAX_ATTEMPTS and record.phase is not Phase.PUBLISHING:
            self._fail_whole_job(
                record,
                f"heygemd stopped unexpectedly {record.attempts - 1} times while working on this job "
                "(out of memory, or an internal error); it was set aside so that other jobs go on.",
                ["the service log (journalctl -u heygemd) has the details"],
            )

    def _retry_later(self, record: JobRecord, err: OSError) -> None:
        try:
            self.journal.save(record)
        except OSError:
            pass
        self.log.error(
            "filesystem error; the job stays claimed and is tried again",
            error=f"{err.strerror}: {err.filename}" if err.filename else str(err),
            retry_in_s=RETRY_STUCK_SECONDS,
        )
        self.queue.append(_Queued(record, time.monotonic() + RETRY_STUCK_SECONDS))

    # ------------------------------------------------------------------ holding a job (lease.py)

    def _hold(self, record: JobRecord) -> JobRecord | None:
        """The record to work on if this process holds the job's lease (taking it again after a restart), else None."""
        job_dir = self.work.job_dir(record.job_id)
        if self.keeper.holds(job_dir):
            if not self.keeper.lost(job_dir):
                return record
            self._drop(record, "another service took the job over while this one was stalled")
            return None
        outcome = self.takeover.resume_own(record)
        if outcome.record is None:
            self._forget(record, outcome.reason)
        return outcome.record

    def _check_lease(self, record: JobRecord) -> None:
        """Cheap check between steps: has the heartbeat found the job taken away?"""
        if self.keeper.lost(self.work.job_dir(record.job_id)):
            raise LeaseLost(record.job_id)

    def _confirm_lease(self, record: JobRecord) -> None:
        """Check on the share itself, right before a step that others must never repeat."""
        if self._lease_gone(record):
            raise LeaseLost(record.job_id)

    def _lease_gone(self, record: JobRecord) -> bool:
        job_dir = self.work.job_dir(record.job_id)
        if self.keeper.lost(job_dir):
            return True
        try:
            return lease.held_kind(job_dir, self.owner) is None and self.work.root.is_dir()
        except OSError:
            return False  # the share is unreachable: nothing is concluded

    def _drop(self, record: JobRecord, reason: str) -> None:
        """Another service has the job now: forget it here, touch nothing of it on the share."""
        self.keeper.release(self.work.job_dir(record.job_id))
        self.journal.remove(record.job_id)
        self.log.warning("job lost to another service; dropped here", reason=reason, job_id=record.job_id)

    def _forget(self, record: JobRecord, reason: str) -> None:
        self.keeper.release(self.work.job_dir(record.job_id))
        self.journal.remove(record.job_id)
        self.log.warning("claimed job not resumed here", reason=reason, job_id=record.job_id)

    # ------------------------------------------------------------------ the steps of a job

    def _plan(self, record: JobRecord) -> None:
        record.started_at = utc_now()
        if record.abandoned_reason:
            self._fail_whole_job(record, record.abandoned_reason, record.abandoned_details)
            return
        try:
            plan = self._job_plan(record)
        except ContractViolation as violation:
            self._fail_whole_job(record, violation.reason, violation.details)
            return
        record.audio = plan.audio.name
        record.output_folder = plan.output_folder
        record.videos = [VideoRecord(template=video.source.name, output_stem=video.output_stem) for video in plan.videos]
        record.warnings = list(plan.warnings)
        record.phase = Phase.RENDERING
        self.journal.save(record)
        self.log.info("job accepted", audio=record.audio, videos=len(record.videos), warnings=record.warnings or None)

    def _job_plan(self, record: JobRecord) -> JobPlan:
        marker = self.config.watch.marker_name if self.config.watch.readiness is Readiness.MARKER else None
        input_dir = self.work.input_dir(record.job_id).resolve()  # absolute: no name can look like an option
        return plan_job(input_dir, record.name, self.config.render, marker)

    def _fail_whole_job(self, record: JobRecord, reason: str, details: list[str]) -> None:
        record.failure_reason = reason
        record.failure_details = details
        record.phase = Phase.PUBLISHING
        self.journal.save(record)

    def _render_videos(self, record: JobRecord) -> None:
        try:
            plan = self._job_plan(record)
        except ContractViolation as violation:  # the folder changed under us: treat as if it failed the first time
            self._fail_whole_job(record, violation.reason, violation.details)
            return
        self._check_lease(record)
        output_dir = self.work.results_dir(record)
        output_dir.mkdir(exist_ok=True)  # not parents: a job folder another service removed is not made again
        finished = {name for video in record.videos if video.status is VideoStatus.OK for name in _result_names(video)}
        keep_only(output_dir, finished)  # drop what a killed render left behind
        for video in record.videos:
            if video.status is VideoStatus.OK and not (output_dir / f"{video.output_stem}.mp4").exists():
                video.status = VideoStatus.PENDING
        if not any(video.status is VideoStatus.PENDING for video in record.videos):
            record.phase = Phase.PUBLISHING
            self.journal.save(record)
            return

        assert self.engine is not None
        try:
            audio = self.engine.prepare_audio(plan.audio)
        except MediaError as err:
            self._fail_whole_job(record, f'The audio file "{plan.audio.name}" cannot be used: {err.reason}.', [str(err)])
            return
        planned = {video.source.name: video for video in plan.videos}
        total = len(record.videos)
        for index, video in enumerate(record.videos, start=1):
            if video.status is not VideoStatus.PENDING:
                continue
            if self.signals.stop_requested.is_set():
                self.log.info("stopping before the next video; the job resumes at the next start", video=video.template)
                return
            self._check_lease(record)
            self._refresh_queue_view()
            if not self._render_one(record, video, planned[video.template], audio, output_dir, index, total):
                return  # cancelled by a stop
        record.phase = Phase.PUBLISHING
        self.journal.save(record)

    def _render_one(self, record, video: VideoRecord, planned, audio, output_dir: Path, index: int, total: int) -> bool:
        assert self.engine is not None
        self.status.current = CurrentJob(
            job=record.name, job_id=record.job_id, video=video.template, index=index, total=total, percent=0.0
        )
        self._set_state("working")
        log = self.log.bind(video=video.template, index=f"{index}/{total}")
        log.info("rendering")
        started = time.monotonic()
        self.cancel_render.clear()
        self.rendering = True
        try:
            report = self.engine.render(
                audio,
                planned.source,
                output_dir / f"{video.output_stem}.mp4",
                planned.options,
                progress=self._on_progress,
                cancel=self.cancel_render,
            )
        except RenderCancelled:
            self._check_lease(record)  # cancelled because the job was taken over: LeaseLost
            log.warning("render abandoned for the stop; it starts again when the service restarts")
            return False
        except EngineError as err:
            video.status, video.error = VideoStatus.FAILED, _plain(err)
            log.warning("video failed", reason=video.error)
        except Exception as err:  # one bad video never stops the others or the service
            video.status, video.error = VideoStatus.FAILED, f"internal error while rendering: {type(err).__name__}: {err}"
            log.exception("video failed with an internal error")
        else:
            _fsync_file(output_dir / f"{video.output_stem}.mp4")  # the journal will say it exists: make it so
            write_atomic(output_dir / f"{video.output_stem}.json", _with_file_names(report).model_dump_json(indent=2) + "\n")
            video.status = VideoStatus.OK
            video.output_duration_s = report.output.duration_s
            log.info("video done", output=f"{video.output_stem}.mp4", seconds=round(time.monotonic() - started, 2))
        finally:
            self.rendering = False
            if self._grace_timer is not None:
                self._grace_timer.cancel()
        video.seconds = round(time.monotonic() - started, 3)
        self.journal.save(record)
        return True

    def _on_progress(self, progress: RenderProgress) -> None:
        self.notifier.watchdog()  # the render is making progress: the loop is healthy
        current = self.status.current
        if current is None:
            return
        if self.keeper.lost(self.work.job_dir(current.job_id)):
            self.cancel_render.set()  # another service has the job: stop spending the GPU on it
        current.percent = round(100 * progress.fraction, 1)
        current.stage = progress.stage
        now = time.monotonic()
        if now - self._last_progress_status >= 1.0 or progress.frames_done >= progress.frames_total:
            self._last_progress_status = now
            self._set_state("working", force=False)

    def _publish(self, record: JobRecord) -> None:
        # The commit renames lease-<us> to publishing-<us>. A takeover renames the same file, so after a
        # takeover this fails; after the commit, a service taking over (if we die) publishes our results folder.
        job_dir = self.work.job_dir(record.job_id)
        if not lease.commit(job_dir, self.owner):
            self._confirm_lease(record)
            raise FileNotFoundError(errno.ENOENT, "the job's lease cannot be reached (share unmounted?)", str(job_dir))
        record.finished_at = record.finished_at or utc_now()
        ok = [video for video in record.videos if video.status is VideoStatus.OK]
        if record.failure_reason or not ok:
            self._publish_failure(record)
        else:
            self._publish_results(record, ok)
        self._finish(record)

    def _publish_failure(self, record: JobRecord) -> None:
        reason = record.failure_reason
        details = list(record.failure_details)
        failed = [FailedVideo(template=video.template, reason=video.error or "") for video in record.videos if video.error]
        if reason is None:
            reason = f"None of the {len(record.videos)} template videos could be rendered (the reason for each is below)."
            details += [f"{video.template}: {video.reason}" for video in failed]
        record.status = JobStatus.FAILED
        error = ErrorReport(job=record.name, job_id=record.job_id, reason=reason, details=details, failed_videos=failed)
        self._confirm_lease(record)
        target = quarantine_whole_job(record, error, self.dest, self.journal)
        self.log.warning("job quarantined", reason=reason, quarantine=str(target))

    def _publish_results(self, record: JobRecord, ok: list[VideoRecord]) -> None:
        failed = [video for video in record.videos if video.status is VideoStatus.FAILED]
        record.status = JobStatus.PARTIAL if failed else JobStatus.OK
        if failed:
            self._confirm_lease(record)
            quarantined = quarantine_failed_videos(record, self.dest, self.journal)
            self.log.warning("failed templates quarantined", templates=[video.template for video in failed], quarantine=str(quarantined))
        output_dir = self.work.results_dir(record)
        if output_dir.exists():
            keep_only(output_dir, {name for video in ok for name in _result_names(video)} | {JOB_REPORT})
            write_atomic(output_dir / JOB_REPORT, self._job_report(record).model_dump_json(indent=2) + "\n")
        self._confirm_lease(record)
        published = publish_outbox_folder(record, self.dest, self.journal)
        if self.config.outputs.zip_bundle:
            write_zip_bundle(record, self.dest, self.journal)
        self._confirm_lease(record)
        dispose_inputs(record, self.config.outputs.after_success, self.dest, self.journal)
        self.log.info("job done", status=record.status.value, outbox=str(published), videos_ok=len(ok), videos_failed=len(failed))

    def _job_report(self, record: JobRecord) -> JobReport:
        engine_info = self.engine.describe() if self.engine is not None else {}
        finished = record.finished_at or utc_now()
        return JobReport(
            job=record.name,
            job_id=record.job_id,
            status=record.status or JobStatus.OK,
            dry_run=bool(engine_info.get("dry_run")),
            audio=record.audio or "",
            videos=[
                VideoResult(
                    template=video.template,
                    status=video.status,
                    output=f"{video.output_stem}.mp4" if video.status is VideoStatus.OK else None,
                    report=f"{video.output_stem}.json" if video.status is VideoStatus.OK else None,
                    error=video.error,
                    seconds=video.seconds,
                    output_duration_s=video.output_duration_s,
                )
                for video in record.videos
            ],
            received_at=record.claimed_at,
            started_at=record.started_at,
            finished_at=finished,
            seconds=round((finished - record.claimed_at).total_seconds(), 3),
            quarantine_folder=str(record.quarantine_path) if record.quarantine_path else None,
            warnings=record.warnings,
            engine=engine_info,
            finished_by=self.owner.id,
            taken_over_from=record.previous_owners,
        )

    def _finish(self, record: JobRecord) -> None:
        record.phase = Phase.DONE
        self.journal.save(record)
        finished = record.finished_at or utc_now()
        self.journal.append_history(
            HistoryEntry(
                job=record.name,
                job_id=record.job_id,
                status=record.status or JobStatus.FAILED,
                finished_at=finished,
                seconds=round((finished - record.claimed_at).total_seconds(), 3),
                videos_ok=sum(video.status is VideoStatus.OK for video in record.videos),
                videos_failed=sum(video.status is VideoStatus.FAILED for video in record.videos),
                outbox=record.outbox_path,
                quarantine=record.quarantine_path,
                reason=record.failure_reason,
            )
        )
        self.keeper.release(self.work.job_dir(record.job_id))
        remove_tree(self.work.job_dir(record.job_id))
        self.journal.remove(record.job_id)

    # ------------------------------------------------------------------ start-up, reload, stop

    def _load_engine(self, settings: EngineSettings):
        from heygemd.engine import LipSyncEngine  # torch is imported here, once

        if settings.face_cache_dir is None:  # re-used templates skip face detection
            settings = settings.model_copy(update={"face_cache_dir": self.config.paths.state / "face-tracks"})
        self.log.info("loading engine", dry_run=settings.dry_run, checkpoint=str(settings.checkpoint), device=settings.device)
        return LipSyncEngine(settings)

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
        known_ids = set()
        for record in self.journal.records():
            known_ids.add(record.job_id)
            with structlog.contextvars.bound_contextvars(job=record.name):
                # The lease is taken again when the job's turn comes (_hold): another service may have it now.
                self.log.info("resuming a claimed job", job_id=record.job_id, phase=record.phase.value)
                self.queue.append(_Queued(record))
        self._return_orphans(known_ids)

    def _return_orphans(self, known_ids: set[str]) -> None:
        """Work folders of an older heygemd (no lease) of this service without a journal record: back to the inbox.

        Folders with a lease need no help: whoever sees the lease expire takes the job over from its record.
        """
        if not self.work.root.is_dir():
            return
        state = str(self.config.paths.state.resolve())
        for job_dir in sorted(self.work.root.iterdir()):
            if job_dir.name in known_ids or not job_dir.is_dir() or lease.find_lease(job_dir) is not None:
                continue
            try:
                owner = json.loads((job_dir / OWNER_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                owner = {}
            if owner.get("state") != state:
                continue  # another service's job (or not ours to judge)
            input_dir = job_dir / "input"
            if input_dir.is_dir() and self.inbox.is_dir():
                back = move_without_overwrite(input_dir, self.inbox, f"{job_dir.name}-recovered")
                self.log.warning("work folder without journal record; its job was put back in the inbox", inbox_folder=back.name)
            remove_tree(job_dir)

    def _describe_watch(self) -> None:
        plan = self.watcher.plan
        self.status.inbox = str(self.inbox)
        self.status.watch_mode = plan.mode.value
        self.status.filesystem = plan.filesystem
        self.log.info("watching the inbox", mode=plan.mode.value, filesystem=plan.filesystem, why=plan.reason,
                      settle_s=self.tracker.settle_seconds)
        capability = probe_capability(self.inbox)
        (self.log.info if capability.complete else self.log.warning)("open files", method=capability.method.value, detail=capability.detail)

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
        if new.engine != self.config.engine:
            self.engine = None  # free the GPU memory of the old model before loading the new one
            gc.collect()
            try:
                self.engine = self._load_engine(new.engine)
            except EngineError as err:
                self.log.error("the new engine settings do not load; the previous ones are loaded again", error=str(err))
                new = new.model_copy(update={"engine": self.config.engine})
                self.engine = self._load_engine(self.config.engine)
            self.status.engine = self.engine.describe()
            self.status.dry_run = bool(self.status.engine.get("dry_run"))
        self.watcher.stop()
        self.config, self.config_source = new, loaded.source
        self._apply_paths()
        self.tracker = self._make_tracker()
        self._describe_watch()
        self.watcher.ensure_running()
        self.status.config_file = str(loaded.source) if loaded.source else None
        self.log.info("configuration reloaded", config=str(loaded.source) if loaded.source else "defaults")
        self.notifier.ready(self.status.summary())

    def _on_stop_signal(self, count: int) -> None:
        # Runs in the main thread between bytecodes, possibly in the middle of a render.
        grace = self.config.service.stop_grace_seconds
        self.status.state = "stopping"
        self.status_file.write(self.status)
        if not self.rendering:
            self.log.info("stop requested")
            self.notifier.stopping("stopping")
            return
        if count == 1:
            self.log.info("stop requested; the current video may finish", grace_s=grace)
            self.notifier.stopping(f"stopping: finishing the current video (up to {grace:.0f} s)", grace + STOP_MARGIN_SECONDS)
            self._grace_timer = threading.Timer(grace, self.cancel_render.set)
            self._grace_timer.daemon = True
            self._grace_timer.start()
        else:
            self.log.info("stop requested again; abandoning the current video now")
            self.notifier.stopping("stopping now: abandoning the current video", STOP_MARGIN_SECONDS)
            self.cancel_render.set()

    # ------------------------------------------------------------------ status

    def _refresh_queue_view(self) -> None:
        try:
            self._scan_inbox()
        except OSError:
            pass

    def _set_state(self, state: str, force: bool = True) -> None:
        if self.signals.stop_requested.is_set() and state in ("idle", "working"):
            state = "stopping"
        self.status.state = state
        self.status_file.write(self.status, force=force)
        if not self.signals.stop_requested.is_set():
            self.notifier.status(self.status.summary())


def _with_file_names(report: RenderReport) -> RenderReport:
    """The sidecar names files as the person knows them, not by their place in the (temporary) work area."""
    return report.model_copy(
        update={
            part: getattr(report, part).model_copy(update={"path": Path(getattr(report, part).path.name)})
            for part in ("audio", "video", "output")
        }
    )


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _result_names(video: VideoRecord) -> tuple[str, str]:
    return (f"{video.output_stem}.mp4", f"{video.output_stem}.json")


def _plain(err: EngineError) -> str:
    """The engine's one-line message, with the work-area path shortened to the file's name."""
    if err.path is not None:
        return f"{err.path.name}: {err.reason}"
    return str(err)


def _flat_engine(info: dict) -> dict:
    checkpoint = info.get("checkpoint") or {}
    return {
        "device": info.get("device"),
        "dry_run": info.get("dry_run"),
        "detector": info.get("detector"),
        "checkpoint": checkpoint.get("path"),
        "checkpoint_name": checkpoint.get("known_name"),
        "checkpoint_sha256": (checkpoint.get("sha256") or "")[:16] or None,
    }


def run_service(explicit_config: Path | None) -> int:
    try:
        loaded = load_config(explicit_config)
    except ConfigError as err:
        configure_logging(LogConfig())
        get_logger("heygemd.daemon").error("configuration error", error=str(err))
        return ExitCode.CONFIG
    configure_logging(loaded.config.log)
    return Service(loaded, explicit_config).run()
