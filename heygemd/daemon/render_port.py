"""The render step as a port: the runner asks a ``Renderer`` to render a job's pending videos.

Two renderers implement it: ``LocalRenderer`` (daemon/local_render.py: the warm engine in this
process) and ``ClusterRenderer`` (heygemd/cluster/renderer.py: one Celery task per video, rendered
by `heygemd worker` processes). `heygemd run` chooses one at start-up (commands/service.py); the
runner and the service know only this module's types.

A renderer ends every video through ``VideoEnds`` (daemon/video_end.py), and stops when the
``RenderGuard`` says so; what it tells the runner back is one ``RenderEnd``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from heygemd.codes import Failure
from heygemd.daemon.config import HeygemdConfig
from heygemd.daemon.contract import ModelsOnOffer, PlannedVideo
from heygemd.daemon.journal import JobRecord, VideoRecord
from heygemd.daemon.reports import VideoStatus
from heygemd.daemon.status import ClusterWorker, WorkerTask
from heygemd.daemon.video_end import VideoEnds
from heygemd.engine import EngineInfo, EngineSettings, ModelKind, RenderOptions, RenderProgress, RenderReport

if TYPE_CHECKING:
    from heygemd.engine.engine import PreparedAudio  # torch: only for the type


@dataclass(frozen=True)
class RenderGuard:
    """The checks a renderer makes between and during renders: a stop, a cancel, inputs that changed."""

    stop_requested: Callable[[], bool]
    cancelled: Callable[[], bool]  # a person cancelled this job (control.json)
    changed_inputs: Callable[[], list[str]]  # the inputs whose size or time changed since the claim
    abandon_now: threading.Event  # set by the service when the render in flight must stop (the stop's grace is over)
    stall_seconds: float  # a render without progress for this long is stopped (daemon/supervise.py)
    # The decoded audio's length (seconds) against the limits: why the job is refused, or None. The local renderer
    # asks it of the snapshot before the first frame, since a header may lie (the plan checked the header's).
    audio_refused: Callable[[float], Failure | None] = lambda seconds: None


@dataclass(frozen=True)
class JobVideos:
    """One job's videos to render: the record (its pending videos), their plans, and where results go."""

    record: JobRecord
    planned: dict[str, PlannedVideo]  # by output stem: this audio's videos (a job may have several audio files)
    audio: Path
    output_dir: Path  # the job's results folder: <output_stem>.mp4, .json and the thumbnail
    job_dir: Path  # the job's work folder (the cluster's task outputs go under it)
    ends: VideoEnds  # how each video ends (journal, results folder, metrics)
    model: ModelKind | None = None  # job.toml's model: its videos render only where that model runs (None: any)

    def pending(self) -> list[VideoRecord]:
        """The videos still to render with this audio (the record also holds the job's other audio files' videos)."""
        return [
            video
            for video in self.record.videos
            if video.status is VideoStatus.PENDING and video.output_stem in self.planned
        ]


class EndKind(StrEnum):
    ALL_ENDED = "all ended"  # every pending video ended (done or failed)
    STOPPED = "stopped"  # a stop was asked for: the job resumes at the next start
    CANCELLED = "cancelled"  # a person cancelled the job
    INPUTS_CHANGED = "inputs changed"  # some inputs changed since the claim
    RETRY = "retry"  # a video hit a transient failure: the job waits until ``retry_at``
    AUDIO_FAILED = "audio failed"  # the audio cannot be used: no video can render
    AUDIO_REFUSED = "audio refused"  # the decoded audio is over a limit: the job fails with ``failure`` as it is


@dataclass(frozen=True)
class RenderEnd:
    kind: EndKind
    changed: Sequence[str] = field(default_factory=tuple)  # INPUTS_CHANGED
    retry_at: datetime | None = None  # RETRY
    failure: Failure | None = None  # RETRY: what it waits out; AUDIO_FAILED, AUDIO_REFUSED: why
    detail: str = ""  # AUDIO_FAILED: the engine's reason, for the job's error


ALL_ENDED = RenderEnd(EndKind.ALL_ENDED)
STOPPED = RenderEnd(EndKind.STOPPED)
CANCELLED = RenderEnd(EndKind.CANCELLED)


class RenderObserver(Protocol):
    """Where a renderer reports what the service shows (status.json, systemd's STATUS=)."""

    def video_started(self, record: JobRecord, video: VideoRecord, index: int, total: int) -> None: ...

    def progress(self, progress: RenderProgress) -> None: ...

    def tasks(self, tasks: list[WorkerTask]) -> None: ...


class Renderer(Protocol):
    """Renders a job's pending videos until they all ended or the guard says stop."""

    def render(self, job: JobVideos, guard: RenderGuard, observer: RenderObserver) -> RenderEnd: ...

    def models_on_offer(self) -> ModelsOnOffer | None:
        """The lip-sync models a job can ask for now (job.toml's ``model``); None: cannot tell, not checked."""
        ...

    def engine_of(self, record: JobRecord) -> EngineInfo | None:
        """The engine that rendered the job's videos, for its report; None: cannot tell (the service's own then)."""
        ...


class RenderEngine(Protocol):
    """What a renderer needs of the engine (heygemd.engine.LipSyncEngine, or a fake in tests)."""

    @property
    def settings(self) -> EngineSettings: ...

    def describe(self) -> EngineInfo: ...

    def prepare_audio(self, path: Path) -> AbstractContextManager[PreparedAudio]: ...

    def render(
        self,
        audio: PreparedAudio,
        video: Path,
        output: Path,
        options: RenderOptions | None = None,
        *,
        progress: Callable[[RenderProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> RenderReport: ...


@dataclass(frozen=True)
class RendererStart:
    """What the service lends the choice of its renderer at start-up (commands/service.py)."""

    config: HeygemdConfig
    engine: Callable[[], RenderEngine]  # the warm engine of this process (a reload may replace it)
    service_id: str
    stop_requested: threading.Event
    on_standby: Callable[[str | None], None]  # another coordinator holds the queue: (its name)
    on_lost: Callable[[], None]  # the coordinator lock went to another process: the service stops
    on_workers: Callable[[list[ClusterWorker]], None] = lambda workers: None  # cluster mode: the workers, as they beat


class RendererChoice(Protocol):
    def __call__(self, start: RendererStart) -> Renderer | None:
        """The renderer, or None when the service was stopped before it had one (a standby asked to stop)."""
        ...
