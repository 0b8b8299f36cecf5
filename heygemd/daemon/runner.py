"""One claimed job, from plan to outbox: the steps, each safe to repeat after a crash.

The render step is a port: the runner asks its ``Renderer`` (daemon/render_port.py) to render the
pending videos, and acts on the ``RenderEnd`` it returns; every state change goes through
``Lifecycle``. It knows nothing of the inbox, signals or systemd: the service loop calls
``work_on`` and acts on the returned ``Step``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import structlog

from heygemd.atomic import write_atomic
from heygemd.codes import ErrorCode, Failure, failure_from_os_error
from heygemd.control import CancelRequest
from heygemd.daemon.claim import WorkArea
from heygemd.daemon.config import HeygemdConfig, Language, Readiness
from heygemd.daemon.contract import ContractViolation, JobPlan, audio_too_long, plan_job
from heygemd.daemon.control_reader import cancelled_failure
from heygemd.daemon.inputs import InputGone, changed_names, fingerprint_each, fingerprint_inputs, quick_state
from heygemd.daemon.journal import JobRecord, Phase, VideoRecord
from heygemd.daemon.lifecycle import Lifecycle, changed_while_rendering
from heygemd.daemon.limits import check_limits
from heygemd.daemon.outputs import (
    Destinations,
    dispose_inputs,
    keep_only,
    note_outbox_folder,
    publish_outbox_folder,
    quarantine_failed_videos,
    quarantine_whole_job,
    write_zip_bundle,
)
from heygemd.daemon.render_port import EndKind, JobVideos, RenderEnd, Renderer, RenderGuard, RenderObserver
from heygemd.daemon.reports import (
    ErrorReport,
    FailedVideo,
    JobReport,
    JobStatus,
    VideoResult,
    VideoStatus,
    utc_now,
)
from heygemd.daemon.resultpage import make_thumbnail, write_result_page
from heygemd.daemon.scripts import check_speech, read_speech_reports, speak_job, speech_result_names
from heygemd.daemon.supervise import RenderHung, RenderStalled, StallWatch
from heygemd.daemon.video_end import VideoEnds
from heygemd.engine import EngineInfo, RenderProgress, RenderReport
from heygemd.engine.report import ProgressStage
from heygemd.names import display_json
from heygemd.resultfiles import JOB_REPORT, report_name, result_names, thumbnail_name, video_name
from heygemd.speech import SpeechError

T = TypeVar("T")


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
    """What the service lends a job: its stop request, the event that abandons a render, and its status."""

    stop_requested: threading.Event
    abandon_now: threading.Event
    observer: RenderObserver
    cancel_request: Callable[[JobRecord], CancelRequest | None] = lambda record: None  # a person cancelled the job
    on_rendered: Callable[[RenderReport, float], None] = lambda report, seconds: None  # a video is done: its wall time


class JobRunner:
    def __init__(
        self,
        config: HeygemdConfig,
        renderer: Renderer,
        engine_info: Callable[[], EngineInfo],
        lifecycle: Lifecycle,
        dest: Destinations,
        context: RenderContext,
    ) -> None:
        self.config = config
        self.renderer = renderer
        self.engine_info = engine_info
        self.lifecycle = lifecycle
        self.dest = dest
        self.work: WorkArea = dest.work
        self.context = context
        self.log = structlog.get_logger("heygemd.daemon")

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
        except InputGone as gone:  # a deleted or swapped input: its video (the audio: the job) fails, the rest goes on
            self._input_gone(record, gone)
            return self._steps(record)
        except RenderStalled as stalled:  # reading the job's files stalled (the share): tried again later
            failure = Failure(
                code=ErrorCode.RENDER_STALLED,
                reason=f"Reading the job's files made no progress ({stalled}); stopped, tried again later.",
            )
            return self._job_transient(record, failure)
        except OSError as err:
            return self._job_transient(record, failure_from_os_error(err, _doing(record)))
        except MemoryError:
            return self._job_transient(
                record, Failure(code=ErrorCode.OUT_OF_MEMORY, reason="The machine ran out of memory.")
            )

    def _input_gone(self, record: JobRecord, gone: InputGone) -> None:
        """The videos of a deleted or swapped template fail; the audio gone, the whole job does. Not read again."""
        failure = gone.failure()
        self.log.warning("an input was deleted or replaced after the claim", input=gone.name, code=failure.code.value)
        self.lifecycle.input_gone(record, gone.name, failure)

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
            check_speech(plan, self.config)
            spoken = [source.name for source in plan.sources or (plan.audio,)]
            names = list(dict.fromkeys([*spoken, *(plan.template_key(video) for video in plan.videos)]))
            input_dir = self.work.input_dir(record.job_id)
            inputs, unusable = self._read_watched(record, lambda chunk: fingerprint_each(input_dir, names, chunk))
        except ContractViolation as violation:
            self.lifecycle.fail_job(record, violation.failure())
            return
        unusable_audio = [unusable[name] for name in spoken if name in unusable]
        if unusable_audio:  # an audio (or script) that cannot be read: the job fails, as with one audio
            self.lifecycle.fail_job(record, unusable_audio[0])
            return
        videos = [_planned_video(plan.template_key(video), video.output_stem, unusable) for video in plan.videos]
        language = plan.language.value if plan.language else None
        self.lifecycle.accept(record, plan.audio.name, plan.output_folder, videos, inputs, list(plan.warnings), language)
        self.log.info("job accepted", audio=record.audio, videos=len(record.videos), warnings=record.warnings or None)

    def _job_plan(self, record: JobRecord) -> JobPlan:
        watch = self.config.watch
        marker = watch.marker_name if watch.readiness is Readiness.MARKER else None
        input_dir = self.work.input_dir(record.job_id).resolve()  # absolute: no name can look like an option
        return plan_job(
            input_dir,
            record.name,
            self.config.render,
            marker,
            self.config.limits,
            presenter_library=self.config.paths.presenter_library,
            models=self.renderer.models_on_offer(),
        )

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
        names = self._input_names(record)
        inputs = self._read_watched(record, lambda chunk: fingerprint_inputs(input_dir, names, chunk))
        self.lifecycle.inputs_settled(record, inputs)
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
        self._pend_videos_of_changed_audio(record, names)
        return self._wait_for_inputs(record)

    def _pend_videos_of_changed_audio(self, record: JobRecord, names: list[str]) -> None:
        """A job with several audio files (or scripts): a changed one's videos render again too (all, if unsure)."""
        try:
            planned = self._job_plan(record).videos
            stems = {video.output_stem for video in planned if video.audio is not None and video.audio.name in names}
        except ContractViolation:  # the folder no longer plans: nothing of it may be published as it was
            stems = {video.output_stem for video in record.videos}
        again = [video for video in record.videos if video.output_stem in stems and video.status is not VideoStatus.PENDING]
        if again:
            self.lifecycle.render_again(record, again)

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
        finished = {name for video in record.videos if video.status is VideoStatus.OK for name in _results(video)}
        speech = speech_result_names(video.output_stem for video in record.videos)
        keep_only(output_dir, finished | speech)  # drop what a killed render left behind
        lost = [
            video
            for video in record.videos
            if video.status is VideoStatus.OK and not (output_dir / video_name(video.output_stem)).exists()
        ]
        if lost:
            self.lifecycle.render_again(record, lost)
        if any(video.status is VideoStatus.PENDING for video in record.videos):
            step = self._render_pending(record, plan, output_dir)
            if step is not None or record.phase is not Phase.RENDERING:
                return step
        input_dir = self.work.input_dir(record.job_id)
        changed = self._read_watched(
            record, lambda chunk: changed_names(input_dir, record.inputs, with_content=True, on_chunk=chunk)
        )
        if changed:
            return self._inputs_changed(record, changed)
        self.lifecycle.publishing(record)
        return None

    def _render_pending(self, record: JobRecord, plan: JobPlan, output_dir: Path) -> Step | None:
        changed = changed_names(self.work.input_dir(record.job_id), record.inputs)
        if changed:
            return self._inputs_changed(record, changed)
        for source_plan in plan.per_source():  # one audio (or script) after the other, each with every template
            stems = {video.output_stem for video in source_plan.videos}
            if not any(video.status is VideoStatus.PENDING and video.output_stem in stems for video in record.videos):
                continue
            step = self._render_source(record, source_plan, output_dir)
            if step is not None or record.phase is not Phase.RENDERING:
                return step
        return None

    def _render_source(self, record: JobRecord, plan: JobPlan, output_dir: Path) -> Step | None:
        """The pending videos of one audio (or script: spoken first)."""
        (output_dir / plan.results_subfolder).mkdir(exist_ok=True)
        if plan.speech is not None:
            spoken = self._speak(record, plan, output_dir / plan.results_subfolder)
            if not isinstance(spoken, Path):
                return spoken  # STOPPED, or None: the job failed or was cancelled
            plan = replace(plan, audio=spoken.absolute())  # absolute: a cluster worker maps it like the inputs
        input_dir = self.work.input_dir(record.job_id)
        job = JobVideos(
            record=record,
            planned={video.output_stem: video for video in plan.videos},  # this audio's videos
            audio=plan.audio,
            output_dir=output_dir,
            job_dir=self.work.job_dir(record.job_id),
            ends=VideoEnds(self.lifecycle, self.context.on_rendered),
            model=plan.model,
        )
        guard = RenderGuard(
            stop_requested=self.context.stop_requested.is_set,
            cancelled=lambda: self.context.cancel_request(record) is not None,
            changed_inputs=lambda: changed_names(input_dir, record.inputs),
            abandon_now=self.context.abandon_now,
            stall_seconds=self.config.service.stall_seconds,
            audio_refused=lambda seconds: self._audio_over_limit(plan.audio.name, seconds),
        )
        while True:
            end = self.renderer.render(job, guard, self.context.observer)
            if end.kind is not EndKind.CANCELLED or self._cancel_if_asked(record):
                return self._after_render(record, plan, end)
            # the cancel request was withdrawn meanwhile: the render goes on

    def _audio_over_limit(self, audio: str, seconds: float) -> Failure | None:
        """The decoded length, not the header's (which may lie), against limits.max_audio_seconds."""
        limit = self.config.limits.max_audio_seconds
        if not limit or round(seconds, 2) <= limit:
            return None
        self.log.warning("the decoded audio is longer than the limit", seconds=round(seconds, 2), limit=limit)
        return audio_too_long(audio, seconds, limit).failure()

    def _read_watched(self, record: JobRecord, read: Callable[[Callable[[], None]], T]) -> T:
        """``read(chunk)`` (hashing the job's files; ``chunk()`` after each chunk) under the stall watch.

        A read that stalls for ``service.stall_seconds`` raises RenderStalled; one that cannot be interrupted
        RenderHung (the service restarts), after the job was recorded as waiting.
        """
        try:
            return StallWatch.for_stall(self.config.service.stall_seconds).run(
                lambda progress: read(lambda: progress(None)), lambda update: None, self.context.abandon_now
            )
        except RenderHung as hung:
            self.lifecycle.job_transient(record, Failure(code=ErrorCode.RENDER_STALLED, reason=f"Reading: {hung}."))
            raise

    def _after_render(self, record: JobRecord, plan: JobPlan, end: RenderEnd) -> Step | None:
        if end.kind is EndKind.STOPPED:
            return STOPPED
        if end.kind is EndKind.INPUTS_CHANGED:
            return self._inputs_changed(record, list(end.changed))
        if end.kind is EndKind.RETRY:
            return Step(StepKind.RETRY, end.retry_at, end.failure)
        if end.kind is EndKind.AUDIO_FAILED:
            assert end.failure is not None
            return self._audio_failed(record, plan, end.failure, end.detail)
        if end.kind is EndKind.AUDIO_REFUSED:
            assert end.failure is not None
            self.lifecycle.fail_job(record, end.failure)
        return None  # every video ended, or the job was cancelled (it goes to quarantine)

    def _audio_failed(self, record: JobRecord, plan: JobPlan, failure: Failure, detail: str) -> Step | None:
        """The audio cannot be used: every video's failure, so the whole job's; in a job with several audio files
        (or scripts), only its own videos fail."""
        if failure.transient:
            return self._job_transient(record, failure)
        if plan.results_subfolder:
            own = failure.model_copy(update={"reason": f'The audio file "{plan.audio.name}" cannot be used: {detail}.'})
            stems = {planned.output_stem for planned in plan.videos}
            for video in record.videos:
                if video.output_stem in stems and video.status is VideoStatus.PENDING:
                    self.lifecycle.video_failed(record, video, own, 0.0)
            return None
        reason = f'The audio file "{record.audio}" cannot be used: {detail}.'
        self.lifecycle.fail_job(record, failure.model_copy(update={"reason": reason, "details": [failure.reason]}))
        return None

    def _speak(self, record: JobRecord, plan: JobPlan, output_dir: Path) -> Path | Step | None:
        """The script spoken into the results folder (a stage of its own); STOPPED for a stop; None when the job
        failed or was cancelled."""

        def progress(done: int, total: int) -> None:
            self.context.observer.progress(
                RenderProgress(video=plan.audio, frames_done=done, frames_total=total, stage=ProgressStage.SPEECH)
            )

        self.context.abandon_now.clear()
        started = time.monotonic()
        try:
            spoken = speak_job(plan, self.config, output_dir, progress, self.context.abandon_now)
        except SpeechError as err:
            if err.code is ErrorCode.CANCELLED:
                if self._cancel_if_asked(record):
                    return None
                self.log.warning("speech abandoned for the stop; it starts again when the service restarts")
                return STOPPED
            if record.phase is Phase.RENDERING:
                self.lifecycle.fail_job(record, err.failure())
            return None
        except ContractViolation as violation:  # the script or the voice changed since planning
            self.lifecycle.fail_job(record, violation.failure())
            return None
        self.log.info("script spoken", script=plan.audio.name, seconds=round(time.monotonic() - started, 3))
        return spoken

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
                details=[_with_name(video.template, video.reason) for video in failed],
            )
        self.lifecycle.concluded(record, JobStatus.FAILED, failure)
        error = ErrorReport.of(record.name, record.job_id, failure, failed_videos=failed)
        target = quarantine_whole_job(record, error, self.dest, self.lifecycle)
        self.log.warning("job quarantined", code=failure.code.value, reason=failure.reason, quarantine=str(target))

    def _publish_results(self, record: JobRecord, ok: list[VideoRecord]) -> None:
        failed = [video for video in record.videos if video.status is VideoStatus.FAILED]
        self.lifecycle.concluded(record, JobStatus.PARTIAL if failed else JobStatus.OK)
        if failed:
            quarantined = quarantine_failed_videos(record, self.dest, self.lifecycle)
            self.log.warning(
                "failed templates quarantined", templates=[video.template for video in failed], quarantine=str(quarantined)
            )
        output_dir = self.work.results_dir(record)
        if output_dir.exists():
            speech = speech_result_names(video.output_stem for video in record.videos)
            keep_only(output_dir, {name for video in ok for name in _results(video)} | {JOB_REPORT} | speech)
            report = self.job_report(record)
            write_atomic(output_dir / JOB_REPORT, display_json(report) + "\n")
            for video in ok:  # a video rendered by an older heygemd comes without one
                if not (output_dir / thumbnail_name(video.output_stem)).exists():
                    make_thumbnail(
                        output_dir / video_name(video.output_stem),
                        output_dir / thumbnail_name(video.output_stem),
                        video.output_duration_s,
                    )
            write_result_page(output_dir, report)  # inside the folder: it appears in the outbox with the results
        published = publish_outbox_folder(record, self.dest, self.lifecycle)
        note_outbox_folder(record)
        if self.config.outputs.zip_bundle:
            write_zip_bundle(record, self.dest, self.lifecycle)
        dispose_inputs(record, self.config.outputs.after_success, self.dest, self.lifecycle)
        self.log.info(
            "job done",
            status=record.status.value if record.status else None,
            outbox=str(published),
            videos_ok=len(ok),
            videos_failed=len(failed),
        )

    def job_report(self, record: JobRecord) -> JobReport:
        engine_info = self.renderer.engine_of(record) or self.engine_info()
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
                    output=video_name(video.output_stem) if video.status is VideoStatus.OK else None,
                    report=report_name(video.output_stem) if video.status is VideoStatus.OK else None,
                    error=video.failure.reason if video.failure else None,
                    code=video.failure.code if video.failure else None,
                    seconds=video.seconds,
                    output_duration_s=video.output_duration_s,
                    worker=video.worker,
                )
                for video in record.videos
            ],
            inputs=record.inputs,
            received_at=record.arrived_at or record.claimed_at,
            claimed_at=record.claimed_at,
            started_at=record.started_at,
            finished_at=finished,
            seconds=round((finished - (record.arrived_at or record.claimed_at)).total_seconds(), 3),
            quarantine_folder=str(record.quarantine_path) if record.quarantine_path else None,
            warnings=record.warnings,
            language=Language(record.language or self.config.outputs.language).value,
            engine=engine_info,
            speech=read_speech_reports(self.work.results_dir(record), [video.output_stem for video in record.videos]),
        )


def failed_videos(record: JobRecord) -> list[FailedVideo]:
    return [
        FailedVideo(template=video.template, reason=video.failure.reason, code=video.failure.code)
        for video in record.videos
        if video.status is VideoStatus.FAILED and video.failure is not None
    ]


def _with_name(template: str, reason: str) -> str:
    """ "clip.mp4: is not a video", never "clip.mp4: clip.mp4: is not a video" (an engine reason names its file)."""
    return reason if reason.startswith(f"{template}:") else f"{template}: {reason}"


def _planned_video(template: str, output_stem: str, unusable: dict[str, Failure]) -> VideoRecord:
    """A planned video's record: pending, or failed at once when its template cannot be read (it fails alone)."""
    failure = unusable.get(template)
    if failure is None:
        return VideoRecord(template=template, output_stem=output_stem)
    return VideoRecord(template=template, output_stem=output_stem, status=VideoStatus.FAILED, failure=failure)


def _doing(record: JobRecord) -> str:
    return {
        Phase.CLAIMED: "planning the job",
        Phase.RENDERING: "rendering",
        Phase.PUBLISHING: "publishing the results",
    }.get(record.phase, "working on the job")


def _results(video: VideoRecord) -> tuple[str, str, str]:
    return result_names(video.output_stem)
