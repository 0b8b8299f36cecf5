"""How a video ends, whoever rendered it: the failure classification and the "video done" step.

The local renderer, the cluster renderer and the cluster worker all end videos here, so a CUDA
out-of-memory reads the same wherever it happened, and a finished video is journaled, described and
counted the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import structlog

from heygemd.atomic import fsync_file, write_atomic
from heygemd.codes import ErrorCode, Failure, failure_from_os_error
from heygemd.daemon.journal import JobRecord, VideoRecord
from heygemd.daemon.lifecycle import Lifecycle
from heygemd.daemon.reports import RenderedBy
from heygemd.daemon.resultpage import make_thumbnail
from heygemd.daemon.supervise import RenderStalled
from heygemd.engine import EngineError, RenderReport
from heygemd.names import display_json
from heygemd.resultfiles import report_name, thumbnail_name, video_name

TORCH_OUT_OF_MEMORY = "OutOfMemoryError"  # torch.cuda.OutOfMemoryError's name: told apart without importing torch


def render_failure(template: str, err: BaseException) -> Failure:
    """Why the render of ``template`` failed, from what it raised (a stop or a cancel is no failure: not here)."""
    if isinstance(err, EngineError):
        return err.failure()
    if isinstance(err, RenderStalled):
        return Failure(
            code=ErrorCode.RENDER_STALLED, reason=f"{template}: the render made no progress ({err}) and was stopped."
        )
    if isinstance(err, OSError):
        return failure_from_os_error(err, f"rendering {template}")
    if isinstance(err, MemoryError):
        return Failure(code=ErrorCode.OUT_OF_MEMORY, reason=f"{template}: the machine ran out of memory.")
    if type(err).__name__ == TORCH_OUT_OF_MEMORY:
        return Failure(code=ErrorCode.OUT_OF_MEMORY, reason=f"{template}: the GPU ran out of memory.")
    return Failure(
        code=ErrorCode.INTERNAL, reason=f"{template}: internal error while rendering ({type(err).__name__}: {err})"
    )


def hung_failure(template: str, hung: Exception) -> Failure:
    """A render that did not stop when cancelled: the service restarts, and the video is tried again after it."""
    return Failure(code=ErrorCode.RENDER_STALLED, reason=f"{template}: {hung}; the service restarted.")


def with_file_names(report: RenderReport) -> RenderReport:
    """The sidecar names files as the person knows them, not by their place in the (temporary) work area."""
    return report.model_copy(
        update={
            "audio": report.audio.model_copy(update={"path": Path(report.audio.path.name)}),
            "video": report.video.model_copy(update={"path": Path(report.video.path.name)}),
            "output": report.output.model_copy(update={"path": Path(report.output.path.name)}),
        }
    )


class VideoEnds:
    """The end of each video of a job: into the journal (through Lifecycle), the results folder and the metrics."""

    def __init__(self, lifecycle: Lifecycle, on_rendered: Callable[[RenderReport, float], None]) -> None:
        self.lifecycle = lifecycle
        self.on_rendered = on_rendered  # the service's metrics: (report, wall seconds)
        self.log = structlog.get_logger("heygemd.daemon")

    def done(
        self,
        record: JobRecord,
        video: VideoRecord,
        rendered: Path,
        output_dir: Path,
        report: RenderReport,
        seconds: float,
        worker: RenderedBy | None = None,
    ) -> None:
        """The video is rendered at ``rendered``: it moves to the results folder (one rename, a no-op in place),
        with its report and thumbnail beside it, and the journal says so."""
        output = output_dir / video_name(video.output_stem)
        if rendered != output:
            os.replace(rendered, output)
        else:
            fsync_file(output)  # the journal will say it exists: make it so
        write_atomic(output_dir / report_name(video.output_stem), display_json(with_file_names(report)) + "\n")
        make_thumbnail(output, output_dir / thumbnail_name(video.output_stem), report.output.duration_s)
        self.lifecycle.video_done(record, video, report.output.duration_s, seconds, worker)
        self.on_rendered(report, video.seconds or 0.0)
        self.log.info(
            "video done",
            video=video.template,
            output=video_name(video.output_stem),
            worker=worker.name if worker else None,
            seconds=video.seconds,
        )

    def failed(
        self,
        record: JobRecord,
        video: VideoRecord,
        failure: Failure,
        seconds: float | None,
        worker: RenderedBy | None = None,
    ) -> datetime | None:
        """The video failed: when to try it again (a transient failure), or None when it ended failed."""
        log = self.log.bind(video=video.template)
        if failure.transient:
            retry_at = self.lifecycle.video_transient(record, video, failure, worker)
            if retry_at is not None:
                log.warning(
                    "video hit a transient error; tried again later",
                    code=failure.code.value,
                    reason=failure.reason,
                    retry_at=retry_at.isoformat(),
                    failures=record.retry.failures,
                )
                return retry_at
            log.warning("transient errors went on too long; the video failed", code=failure.code.value)
        else:
            self.lifecycle.video_failed(record, video, failure, seconds, worker)
        log.warning("video failed", code=failure.code.value, reason=failure.reason)
        return None

    def hung(self, record: JobRecord, video: VideoRecord, hung: Exception) -> None:
        """The render hung: the service restarts; the video waits like after a stall."""
        self.lifecycle.video_transient(record, video, hung_failure(video.template, hung))

    def audio_hung(self, record: JobRecord, hung: Exception) -> None:
        """Reading the audio hung: the service restarts; the whole job (every video needs the audio) waits."""
        failure = Failure(code=ErrorCode.RENDER_STALLED, reason=f'The audio "{record.audio}": {hung}; restarted.')
        self.lifecycle.job_transient(record, failure)

    def task_enqueued(self, record: JobRecord, video: VideoRecord, task_id: str) -> None:
        """Cluster mode: the video's render task, journaled before it is sent (a restart re-attaches to it)."""
        self.lifecycle.task_enqueued(record, video, task_id)

    def task_cancelled(self, record: JobRecord, video: VideoRecord) -> None:
        """Cluster mode: the task was cancelled without its job (a worker stopping): the video is enqueued again."""
        self.lifecycle.task_cancelled(record, video)
