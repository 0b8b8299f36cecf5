"""One claimed job, from plan to outbox: the steps, each safe to repeat after a crash.

The runner takes the engine through a small typed protocol (``RenderEngine``), so it can be
driven in process by a fake engine in tests; every state change goes through ``Lifecycle``.
It knows nothing of the inbox, signals or systemd: the service loop (worker.py) calls
``work_on`` and acts on the returned ``Step``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog

from heygemd.atomic import fsync_file, write_atomic
from heygemd.codes import ErrorCode, Failure, failure_from_os_error
from heygemd.control import CancelRequest
from heygemd.daemon.claim import WorkArea
from heygemd.daemon.config import HeygemdConfig, Readiness
from heygemd.daemon.contract import ContractViolation, JobPlan, PlannedVideo, plan_job
from heygemd.daemon.controls import cancelled_failure
from heygemd.daemon.inputs import changed_names, fingerprint_inputs, quick_state
from heygemd.daemon.journal import JobRecord, Phase, VideoRecord
from heygemd.daemon.lifecycle import Lifecycle, changed_while_rendering
from heygemd.daemon.limits import check_limits
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
from heygemd.daemon.reports import (
    ErrorReport,
    FailedVideo,
    JobReport,
    JobStatus,
    VideoResult,
    VideoStatus,
    utc_now,
)
from heygemd.daemon.resultpage import make_thumbnail, thumbnail_name, write_result_page
from heygemd.daemon.supervise import RenderHung, RenderStalled, StallWatch
from heygemd.engine import (
    EngineError,
    EngineInfo,
    RenderCancelled,
    RenderOptions,
    RenderProgress,
    RenderReport,
)


class RenderEngine(Protocol):
    """What the runner needs of the engine (heygemd.engine.LipSyncEngine, or a fake in tests)."""

    def describe(self) -> EngineInfo: ...

    def prepare_audio(self, path: Path) -> AbstractContextManager[Any]: ...

    def render(
        self,
        audio: Any,
        video: Path,
        output: Path,
        options: RenderOptions | None = None,
        *,
        progress: Callable[[RenderProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> RenderReport: ...


class StepKind(StrEnum):
    DONE = "done"  # published or quarantined
    RETRY = "retry"  # waits until ``retry_at`` (a transient failure, inputs settling)
    STOPPED = "stopped"  # a stop was asked for: resumed at the next start


@dataclass(frozen=True)
class Step:
    kind: StepKind
    retry_at: datetime | None = None
    failure: Failure | None = None  # what it waits for


DONE = Step(StepKind.DONE)
STOPPED = Step(StepKind.STOPPED)


@dataclass
class RenderContext:
    """What the service lends a render: its stop request, the cancel event, and where progress goes."""

    stop_requested: threading.Event
    cancel: threading.Event
    on_progress: Callable[[RenderProgress], None]
    on_video: Callable[[JobRecord, VideoRecord, int, int], None]  # a video starts: (record, video, index, total)
    cancel_request: Callable[[JobRecord], CancelRequest | None] = lambda record: None  # a person cancelled the job
    on_rendered: Callable[[RenderReport, float], None] = lambda report, seconds: None  # a video is done: its wall time
    on_tasks: Callable[[list[Any]], None] = lambda tasks: None  # cluster mode: the job's render tasks (TaskProgress)


class JobRunner:
    def __init__(
        self,
        config: HeygemdConfig,
        engine: RenderEngine,
        lifecycle: Lifecycle,
        dest: Destinations,
        context: RenderContext,
        distributor: Any = None,  # cluster mode: heygemd.cluster.dispatch.Dispatcher renders on workers
    ) -> None:
        self.distributor = distributor
        self.config = config
        self.engine = engine
        self.lifecycle = lifecycle
        self.dest = dest
        self.work: WorkArea = dest.work
        self.context = context
        self.log = structlog.get_logger("heygemd.daemon")
        self.stall_watch = StallWatch(
            config.service.stall_seconds, grace_seconds=max(30.0, config.service.stall_seconds / 2)
        )

    # -------------------------------------------------------------- the job

    def work_on(self, record: JobRecord) -> Step:
        """Take the job as far as it goes now."""
        self.lifecycle.begin(record)
        self._cancel_if_asked(record)
        step = self._steps(record)
        if step is not DONE:
            self.lifecycle.pause(record)
        return step

    def _steps(self, record: JobRecord) -> Step:
        try:
            if record.phase is Phase.CLAIMED:
                self._plan(record)
            if record.phase is Phase.RENDERING:
                step = self._render_videos(record)
                if step is not None:
                    return step  # else every video ended (phase PUBLISHING), or the whole job failed (likewise)
            if record.phase is Phase.PUBLISHING:
                self._publish(record)
            return DONE
        except OSError as err:
            return self._job_transient(record, failure_from_os_error(err, _doing(record)))
        except MemoryError:
            return self._job_transient(
                record, Failure(code=ErrorCode.OUT_OF_MEMORY, reason="The machine ran out of memory.")
            )

    def _job_transient(self, record: JobRecord, failure: Failure) -> Step:
        retry_at = self.lifecycle.job_transient(record, failure)
        if retry_at is not None:
            self.log.warning(
                "transient error; the job stays claimed and is tried again",
                code=failure.code.value,
                reason=failure.reason,
                retry_at=retry_at.isoformat(),
                failures=record.retry.failures,
            )
            return Step(StepKind.RETRY, retry_at, failure)
        if record.failure is failure:  # the streak ended the job: to quarantine with the last reason, now
            self.log.warning("transient errors went on too long; the job goes to quarantine", code=failure.code.value)
            return self._steps(record)
        # Publishing cannot be given up half-way (some results may be out): wait for the share, at the longest delay.
        later = utc_now() + timedelta(seconds=self.config.service.retry_max_delay_seconds)
        self.log.error(
            "publishing keeps failing; the operator must look at the share",
            code=failure.code.value,
            reason=failure.reason,
            retry_at=later.isoformat(),
        )
        return Step(StepKind.RETRY, later, failure)

    def _cancel_if_asked(self, record: JobRecord) -> bool:
        """A person cancelled the job: to quarantine as it was dropped, what was rendered discarded. Not once publishing."""
        if record.phase not in (Phase.CLAIMED, Phase.RENDERING):
            return False
        request = self.context.cancel_request(record)
        if request is None:
            return False
        self.lifecycle.fail_job(record, cancelled_failure(record.name, request))
        self.log.warning("job cancelled; it goes to quarantine as it was dropped", by=request.by or None)
        return True

    # -------------------------------------------------------------- planning

    def _plan(self, record: JobRecord) -> None:
        if record.failure is not None:  # abandoned while arriving: straight to quarantine
            self.lifecycle.fail_job(record, record.failure)
            return
        try:
            plan = self._job_plan(record)
            check_limits(plan, self.config.limits)
            names = [plan.audio.name, *(video.source.name for video in plan.videos)]
            inputs = fingerprint_inputs(self.work.input_dir(record.job_id), names)
        except ContractViolation as violation:
            self.lifecycle.fail_job(record, violation.failure())
            return
        except PermissionError as err:
            self.lifecycle.fail_job(record, failure_from_os_error(err, "reading the job's files", reading_input=True))
            return
        videos = [VideoRecord(template=video.source.name, output_stem=video.output_stem) for video in plan.videos]
        self.lifecycle.accept(record, plan.audio.name, plan.output_folder, videos, inputs, list(plan.warnings))
        self.log.info("job accepted", audio=record.audio, videos=len(record.videos), warnings=record.warnings or None)

    def _job_plan(self, record: JobRecord) -> JobPlan:
        watch = self.config.watch
        marker = watch.marker_name if watch.readiness is Readiness.MARKER else None
        input_dir = self.work.input_dir(record.job_id).resolve()  # absolute: no name can look like an option
        return plan_job(input_dir, record.name, self.config.render, marker, self.config.limits, self.config.engine.model)

    # -------------------------------------------------------------- inputs that change after the claim

    def _input_names(self, record: JobRecord) -> list[str]:
        return [item.name for item in record.inputs]

    def _settled(self, record: JobRecord) -> Step | None:
        """None when the inputs are settled (again), or changed too long (the job failed); else the step to wait."""
        changing = record.changed_inputs
        if changing is None:
            return None
        input_dir = self.work.input_dir(record.job_id)
        state = quick_state(input_dir, self._input_names(record))
        if state != changing.last_state:
            waited = (utc_now() - changing.first_seen_at).total_seconds()
            if waited >= self.config.watch.abandon_after_seconds:
                self.lifecycle.fail_job(record, changed_while_rendering(changing.names, record.input_changes))
                return None
            self.lifecycle.inputs_still_changing(record, state)
            return self._wait_for_inputs(record)
        self.lifecycle.inputs_settled(record, fingerprint_inputs(input_dir, self._input_names(record)))
        self.log.info("changed inputs settled; their videos render again", inputs=changing.names)
        return None

    def _inputs_changed(self, record: JobRecord, names: list[str]) -> Step | None:
        """The step to wait for the inputs to settle; None when they changed too often (the job failed)."""
        input_dir = self.work.input_dir(record.job_id)
        state = quick_state(input_dir, self._input_names(record))
        self.log.warning(
            "inputs changed after the claim (an upload still running?); not published from them",
            inputs=names,
            times=record.input_changes + 1,
        )
        if not self.lifecycle.inputs_changed(record, names, state, self.config.watch.max_input_changes):
            return None
        return self._wait_for_inputs(record)

    def _wait_for_inputs(self, record: JobRecord) -> Step:
        assert record.changed_inputs is not None
        failure = changed_while_rendering(record.changed_inputs.names, record.input_changes)
        retry_at = utc_now() + timedelta(
            seconds=max(self.config.watch.settle_seconds, self.config.watch.scan_interval_seconds)
        )
        return Step(StepKind.RETRY, retry_at, failure)

    # -------------------------------------------------------------- rendering

    def _render_videos(self, record: JobRecord) -> Step | None:
        settling = self._settled(record)
        if settling is not None or record.phase is not Phase.RENDERING:
            return settling
        try:
            plan = self._job_plan(record)
        except ContractViolation as violation:  # the folder changed under us: treat as if it failed the first time
            self.lifecycle.fail_job(record, violation.failure())
            return None
        output_dir = self.work.results_dir(record)
        output_dir.mkdir(exist_ok=True)  # not parents: a job folder removed meanwhile is not made again
        finished = {name for video in record.videos if video.status is VideoStatus.OK for name in result_names(video)}
        keep_only(output_dir, finished)  # drop what a killed render left behind
        for video in record.videos:
            if video.status is VideoStatus.OK and not (output_dir / f"{video.output_stem}.mp4").exists():
                video.status = VideoStatus.PENDING
        if any(video.status is VideoStatus.PENDING for video in record.videos):
            step = self._render_pending(record, plan, output_dir)
            if step is not None or record.phase is not Phase.RENDERING:
                return step
        changed = changed_names(self.work.input_dir(record.job_id), record.inputs, with_content=True)
        if changed:
            return self._inputs_changed(record, changed)
        self.lifecycle.publishing(record)
        return None

    def _render_pending(self, record: JobRecord, plan: JobPlan, output_dir: Path) -> Step | None:
        input_dir = self.work.input_dir(record.job_id)
        changed = changed_names(input_dir, record.inputs)
        if changed:
            return self._inputs_changed(record, changed)
        if self.distributor is not None:
            from heygemd.daemon.distributed import render_distributed

            return render_distributed(self, record, plan, output_dir)
        try:
            audio = self.engine.prepare_audio(plan.audio)
        except EngineError as err:
            return self._video_error(record, None, err)
        with audio:  # the audio's snapshot: read and decoded once, muxed into every video, removed after
            return self._render_each(record, plan, audio, output_dir)

    def _render_each(self, record: JobRecord, plan: JobPlan, audio: Any, output_dir: Path) -> Step | None:
        input_dir = self.work.input_dir(record.job_id)
        planned = {video.source.name: video for video in plan.videos}
        total = len(record.videos)
        for index, video in enumerate(record.videos, start=1):
            if video.status is not VideoStatus.PENDING:
                continue
            if record.phase is not Phase.RENDERING or self._cancel_if_asked(record):
                return None  # cancelled: the job goes to quarantine
            if self.context.stop_requested.is_set():
                self.log.info("stopping before the next video; the job resumes at the next start", video=video.template)
                return STOPPED
            changed = changed_names(input_dir, record.inputs)
            if changed:
                return self._inputs_changed(record, changed)
            step = self._render_one(record, video, planned[video.template], audio, output_dir, index, total)
            if step is not None:
                return step
        return None

    def _render_one(
        self,
        record: JobRecord,
        video: VideoRecord,
        planned: PlannedVideo,
        audio: Any,
        output_dir: Path,
        index: int,
        total: int,
    ) -> Step | None:
        self.context.on_video(record, video, index, total)
        log = self.log.bind(video=video.template, index=f"{index}/{total}")
        log.info("rendering")
        started = time.monotonic()
        self.context.cancel.clear()
        output = output_dir / f"{video.output_stem}.mp4"
        try:
            report = self.stall_watch.run(
                lambda progress: self.engine.render(
                    audio, planned.source, output, planned.options, progress=progress, cancel=self.context.cancel
                ),
                self.context.on_progress,
                self.context.cancel,
                lambda: self.context.cancel_request(record) is not None,
            )
        except RenderStalled as stalled:
            failure = Failure(
                code=ErrorCode.RENDER_STALLED,
                reason=f"{video.template}: the render made no progress ({stalled}) and was stopped.",
            )
            return self._video_failure(record, video, failure, time.monotonic() - started)
        except RenderHung as hung:  # the service must restart; the video is retried after it, like a stall
            failure = Failure(code=ErrorCode.RENDER_STALLED, reason=f"{video.template}: {hung}; the service restarted.")
            self.lifecycle.video_transient(record, video, failure)
            raise
        except RenderCancelled:
            if self._cancel_if_asked(record):
                return None
            log.warning("render abandoned for the stop; it starts again when the service restarts")
            return STOPPED
        except EngineError as err:
            return self._video_error(record, video, err, time.monotonic() - started)
        except OSError as err:
            return self._video_failure(
                record, video, failure_from_os_error(err, f"rendering {video.template}"), time.monotonic() - started
            )
        except MemoryError:
            failure = Failure(code=ErrorCode.OUT_OF_MEMORY, reason=f"{video.template}: the machine ran out of memory.")
            return self._video_failure(record, video, failure, time.monotonic() - started)
        except Exception as err:  # one bad video never stops the others or the service
            if type(err).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
                failure = Failure(code=ErrorCode.OUT_OF_MEMORY, reason=f"{video.template}: the GPU ran out of memory.")
            else:
                log.exception("video failed with an internal error")
                failure = Failure(
                    code=ErrorCode.INTERNAL,
                    reason=f"{video.template}: internal error while rendering ({type(err).__name__}: {err})",
                )
            return self._video_failure(record, video, failure, time.monotonic() - started)
        fsync_file(output)  # the journal will say it exists: make it so
        write_atomic(output_dir / f"{video.output_stem}.json", with_file_names(report).model_dump_json(indent=2) + "\n")
        make_thumbnail(output, output_dir / thumbnail_name(video.output_stem), report.output.duration_s)
        self.lifecycle.video_done(record, video, report.output.duration_s, time.monotonic() - started)
        self.context.on_rendered(report, video.seconds or 0.0)
        log.info("video done", output=f"{video.output_stem}.mp4", seconds=video.seconds)
        return None

    def _video_error(
        self, record: JobRecord, video: VideoRecord | None, err: EngineError, seconds: float = 0.0
    ) -> Step | None:
        """An engine error of one video, or of the audio (``video`` None: every video's)."""
        failure = err.failure()
        if video is None:  # the audio: the whole job
            if failure.transient:
                return self._job_transient(record, failure)
            self.lifecycle.fail_job(
                record,
                failure.model_copy(
                    update={
                        "reason": f'The audio file "{record.audio}" cannot be used: {err.reason}.',
                        "details": [failure.reason],
                    }
                ),
            )
            return None
        return self._video_failure(record, video, failure, seconds)

    def _video_failure(self, record: JobRecord, video: VideoRecord, failure: Failure, seconds: float) -> Step | None:
        log = self.log.bind(video=video.template)
        if failure.transient:
            retry_at = self.lifecycle.video_transient(record, video, failure)
            if retry_at is not None:
                log.warning(
                    "video hit a transient error; tried again later",
                    code=failure.code.value,
                    reason=failure.reason,
                    retry_at=retry_at.isoformat(),
                    failures=record.retry.failures,
                )
                return Step(StepKind.RETRY, retry_at, failure)
            log.warning("transient errors went on too long; the video failed", code=failure.code.value)
        else:
            self.lifecycle.video_failed(record, video, failure, seconds)
        log.warning("video failed", code=failure.code.value, reason=failure.reason)
        return None

    # -------------------------------------------------------------- publishing

    def _publish(self, record: JobRecord) -> None:
        ok = [video for video in record.videos if video.status is VideoStatus.OK]
        if record.failure is not None or not ok:
            self._publish_failure(record)
        else:
            self._publish_results(record, ok)

    def _publish_failure(self, record: JobRecord) -> None:
        failed = failed_videos(record)
        failure = record.failure
        if failure is None:
            failure = Failure(
                code=failed[0].code if failed else ErrorCode.INTERNAL,
                reason=f"None of the {len(record.videos)} template videos could be rendered (the reason for each is below).",
                details=[f"{video.template}: {video.reason}" for video in failed],
            )
        self.lifecycle.concluded(record, JobStatus.FAILED, failure)
        error = ErrorReport.of(record.name, record.job_id, failure, failed_videos=failed)
        target = quarantine_whole_job(record, error, self.dest, self.lifecycle.journal)
        self.log.warning("job quarantined", code=failure.code.value, reason=failure.reason, quarantine=str(target))

    def _publish_results(self, record: JobRecord, ok: list[VideoRecord]) -> None:
        failed = [video for video in record.videos if video.status is VideoStatus.FAILED]
        self.lifecycle.concluded(record, JobStatus.PARTIAL if failed else JobStatus.OK)
        if failed:
            quarantined = quarantine_failed_videos(record, self.dest, self.lifecycle.journal)
            self.log.warning(
                "failed templates quarantined", templates=[video.template for video in failed], quarantine=str(quarantined)
            )
        output_dir = self.work.results_dir(record)
        if output_dir.exists():
            keep_only(output_dir, {name for video in ok for name in result_names(video)} | {JOB_REPORT})
            report = self.job_report(record)
            write_atomic(output_dir / JOB_REPORT, report.model_dump_json(indent=2) + "\n")
            for video in ok:  # a video rendered by an older heygemd comes without one
                if not (output_dir / thumbnail_name(video.output_stem)).exists():
                    make_thumbnail(
                        output_dir / f"{video.output_stem}.mp4",
                        output_dir / thumbnail_name(video.output_stem),
                        video.output_duration_s,
                    )
            write_result_page(output_dir, report)  # inside the folder: it appears in the outbox with the results
        published = publish_outbox_folder(record, self.dest, self.lifecycle.journal)
        if self.config.outputs.zip_bundle:
            write_zip_bundle(record, self.dest, self.lifecycle.journal)
        dispose_inputs(record, self.config.outputs.after_success, self.dest, self.lifecycle.journal)
        self.log.info(
            "job done",
            status=record.status.value if record.status else None,
            outbox=str(published),
            videos_ok=len(ok),
            videos_failed=len(failed),
        )

    def job_report(self, record: JobRecord) -> JobReport:
        engine_info = self.engine.describe()
        finished = record.finished_at or utc_now()
        assert record.status is not None
        return JobReport(
            job=record.name,
            job_id=record.job_id,
            status=record.status,
            dry_run=engine_info.dry_run,
            audio=record.audio or "",
            videos=[
                VideoResult(
                    template=video.template,
                    status=video.status,
                    output=f"{video.output_stem}.mp4" if video.status is VideoStatus.OK else None,
                    report=f"{video.output_stem}.json" if video.status is VideoStatus.OK else None,
                    error=video.failure.reason if video.failure else None,
                    code=video.failure.code if video.failure else None,
                    seconds=video.seconds,
                    output_duration_s=video.output_duration_s,
                )
                for video in record.videos
            ],
            inputs=record.inputs,
            received_at=record.claimed_at,
            started_at=record.started_at,
            finished_at=finished,
            seconds=round((finished - record.claimed_at).total_seconds(), 3),
            quarantine_folder=str(record.quarantine_path) if record.quarantine_path else None,
            warnings=record.warnings,
            engine=engine_info,
        )


def failed_videos(record: JobRecord) -> list[FailedVideo]:
    return [
        FailedVideo(template=video.template, reason=video.failure.reason, code=video.failure.code)
        for video in record.videos
        if video.status is VideoStatus.FAILED and video.failure is not None
    ]


def _doing(record: JobRecord) -> str:
    return {
        Phase.CLAIMED: "planning the job",
        Phase.RENDERING: "rendering",
        Phase.PUBLISHING: "publishing the results",
    }.get(record.phase, "working on the job")


def with_file_names(report: RenderReport) -> RenderReport:
    """The sidecar names files as the person knows them, not by their place in the (temporary) work area."""
    return report.model_copy(
        update={
            part: getattr(report, part).model_copy(update={"path": Path(getattr(report, part).path.name)})
            for part in ("audio", "video", "output")
        }
    )


def result_names(video: VideoRecord) -> tuple[str, str, str]:
    return (f"{video.output_stem}.mp4", f"{video.output_stem}.json", thumbnail_name(video.output_stem))
