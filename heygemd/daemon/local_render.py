"""The local renderer: the job's videos render one after the other on the warm engine of this process."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import structlog

from heygemd.codes import ErrorCode, Failure
from heygemd.daemon.contract import ModelsOnOffer, ModelSource
from heygemd.daemon.journal import JobRecord, VideoRecord
from heygemd.daemon.render_port import (
    ALL_ENDED,
    CANCELLED,
    STOPPED,
    EndKind,
    JobVideos,
    RenderEnd,
    RenderEngine,
    RenderGuard,
    RenderObserver,
)
from heygemd.daemon.reports import VideoStatus
from heygemd.daemon.supervise import RenderHung, RenderStalled, StallWatch
from heygemd.daemon.video_end import render_failure
from heygemd.engine import EngineError, EngineInfo, RenderCancelled
from heygemd.resultfiles import video_name

if TYPE_CHECKING:
    from heygemd.engine.engine import PreparedAudio  # torch: only for the type


class LocalRenderer:
    def __init__(self, engine: Callable[[], RenderEngine]) -> None:
        self.engine = engine  # the warm engine now (a reload of the settings replaces it)
        self.log = structlog.get_logger("heygemd.daemon")

    def models_on_offer(self) -> ModelsOnOffer:
        """The one model of this process's engine (engine.model)."""
        return ModelsOnOffer(ModelSource.SERVICE, frozenset({self.engine().describe().model}))

    def engine_of(self, record: JobRecord) -> EngineInfo:
        """This process's engine: it renders every video."""
        return self.engine().describe()

    def render(self, job: JobVideos, guard: RenderGuard, observer: RenderObserver) -> RenderEnd:
        engine = self.engine()
        try:
            audio = self._prepare_audio(engine, job, guard)
        except RenderCancelled:  # a person cancelled the job (or the stop's grace ended) while its audio was read
            return CANCELLED if guard.cancelled() else STOPPED
        except EngineError as err:
            return RenderEnd(EndKind.AUDIO_FAILED, failure=err.failure(), detail=err.reason)
        except RenderStalled as stalled:
            failure = Failure(
                code=ErrorCode.RENDER_STALLED,
                reason=f'The audio "{job.audio.name}" could not be read and decoded: no progress ({stalled}); stopped.',
            )
            return RenderEnd(EndKind.AUDIO_FAILED, failure=failure, detail=failure.reason)
        with audio as prepared:  # the audio's snapshot: read and decoded once, muxed into every video, removed after
            refused = guard.audio_refused(prepared.duration)  # the decoded length: a header may lie
            if refused is not None:
                return RenderEnd(EndKind.AUDIO_REFUSED, failure=refused)
            return self._each(engine, job, guard, observer, prepared)

    def _prepare_audio(
        self, engine: RenderEngine, job: JobVideos, guard: RenderGuard
    ) -> AbstractContextManager[PreparedAudio]:
        """The audio's snapshot (copy and decode) under the stall watch, like a render: a stalled share or decoder
        is stopped after the stall time (RenderStalled), or the service restarts (RenderHung)."""
        guard.abandon_now.clear()
        try:
            return StallWatch.for_stall(guard.stall_seconds).run(
                lambda progress: engine.prepare_audio(job.audio),
                lambda progress: None,
                guard.abandon_now,
                guard.cancelled,
            )
        except RenderHung as hung:
            job.ends.audio_hung(job.record, hung)
            raise

    def _each(
        self, engine: RenderEngine, job: JobVideos, guard: RenderGuard, observer: RenderObserver, audio: PreparedAudio
    ) -> RenderEnd:
        videos = job.record.videos
        for index, video in enumerate(videos, start=1):
            if video.status is not VideoStatus.PENDING or video.output_stem not in job.planned:
                continue  # ended, or another audio's video (a job with several audio files)
            if guard.cancelled():
                return CANCELLED
            if guard.stop_requested():
                self.log.info("stopping before the next video; the job resumes at the next start", video=video.template)
                return STOPPED
            changed = guard.changed_inputs()
            if changed:
                return RenderEnd(EndKind.INPUTS_CHANGED, changed=changed)
            observer.video_started(job.record, video, index, len(videos))
            end = self._one(engine, job, guard, observer, audio, video)
            if end is not None:
                return end
        return ALL_ENDED

    def _one(
        self,
        engine: RenderEngine,
        job: JobVideos,
        guard: RenderGuard,
        observer: RenderObserver,
        audio: PreparedAudio,
        video: VideoRecord,
    ) -> RenderEnd | None:
        log = self.log.bind(video=video.template)
        log.info("rendering")
        planned = job.planned[video.output_stem]
        output = job.output_dir / video_name(video.output_stem)
        started = time.monotonic()
        guard.abandon_now.clear()
        try:
            report = StallWatch.for_stall(guard.stall_seconds).run(
                lambda progress: engine.render(
                    audio, planned.source, output, planned.options, progress=progress, cancel=guard.abandon_now
                ),
                observer.progress,
                guard.abandon_now,
                guard.cancelled,
            )
        except RenderHung as hung:  # the service must restart; the video is retried after it, like a stall
            job.ends.hung(job.record, video, hung)
            raise
        except RenderCancelled:
            if guard.cancelled():
                return CANCELLED
            log.warning("render abandoned for the stop; it starts again when the service restarts")
            return STOPPED
        except Exception as err:  # one bad video never stops the others or the service
            failure = render_failure(video.template, err)
            if failure.code is ErrorCode.INTERNAL:
                log.exception("video failed with an internal error")
            retry_at = job.ends.failed(job.record, video, failure, time.monotonic() - started)
            return None if retry_at is None else RenderEnd(EndKind.RETRY, retry_at=retry_at, failure=failure)
        job.ends.done(job.record, video, output, job.output_dir, report, time.monotonic() - started)
        return None
