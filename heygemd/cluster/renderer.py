"""The cluster renderer: `heygemd run`, the queue's coordinator, renders a job's videos on `heygemd worker`s.

One Celery task per pending video, followed until each has ended; each outcome ends its video through
VideoEnds exactly as a local render does. Every task id is journaled before it is sent, so a restarted
coordinator re-attaches to the tasks in flight. A task is given up on, and its video enqueued again
under a new id, when its hash is gone (Redis restarted without persistence, or the message was lost) or
its worker's heartbeat key expired (the worker died); the old id's hash is deleted first, so a late or
redelivered copy of it renders nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
import structlog
from celery import Celery

from heygemd.cluster.app import make_app, redact
from heygemd.cluster.presence import read_workers
from heygemd.cluster.protocol import TASK_NAME, RenderTask, TaskState, TaskView, task_queue
from heygemd.cluster.store import TaskStore
from heygemd.codes import ErrorCode, Failure
from heygemd.daemon.config import ClusterConfig
from heygemd.daemon.contract import ModelsOnOffer, ModelSource
from heygemd.daemon.fsutil import remove_tree
from heygemd.daemon.journal import JobRecord, VideoRecord
from heygemd.daemon.render_port import (
    ALL_ENDED,
    CANCELLED,
    STOPPED,
    EndKind,
    JobVideos,
    RenderEnd,
    RenderGuard,
    RenderObserver,
)
from heygemd.daemon.reports import RenderedBy
from heygemd.daemon.status import WorkerTask
from heygemd.engine import EngineInfo, RenderReport
from heygemd.engine.report import percent_done
from heygemd.resultfiles import video_name

TASKS_FOLDER = "tasks"  # work/<job-id>/tasks/<task-id>/: each task's output, adopted by the coordinator with one rename
MAX_TASK_ATTEMPTS = 5  # a video whose workers keep dying (out of memory, a crash) fails instead of looping
CANCEL_WAIT_SECONDS = 30.0  # how long a cancel waits for the started renders to stop


@dataclass(frozen=True)
class TaskOutcome:
    video: VideoRecord
    task_id: str
    view: TaskView
    output: Path  # the finished .mp4 in the task's folder (DONE)

    @property
    def report(self) -> RenderReport | None:
        return self.view.report if self.view.state is TaskState.DONE else None

    @property
    def failure(self) -> Failure | None:
        return self.view.failure

    @property
    def seconds(self) -> float:
        return self.view.seconds or 0.0


@dataclass(frozen=True)
class GivenUp:
    """A video failed without a render of its own (its workers kept dying)."""

    video: VideoRecord
    failure: Failure


def worker_task(task_id: str, video: str, view: TaskView) -> WorkerTask:
    """One task as the service's status shows it."""
    return WorkerTask(
        video=video,
        task_id=task_id,
        state=view.state.value,
        worker=view.worker,
        stage=view.stage,
        frames_done=view.frames_done,
        frames_total=view.frames_total,
        percent=percent_done(view.frames_done, view.frames_total) if view.frames_done is not None else None,
    )


def rendered_by(view: TaskView) -> RenderedBy | None:
    """The worker that ended the task, for the journal and job.json."""
    if view.worker is None:
        return None
    return RenderedBy(name=view.worker, host=view.worker_host or view.worker.split("/", 1)[0], gpu=view.worker_gpu)


class ClusterRenderer:
    def __init__(self, config: ClusterConfig, app: Celery, store: TaskStore, broker: str) -> None:
        self.config = config
        self.app = app
        self.store = store
        self.broker = broker  # its address without the password, for logs
        self.log = structlog.get_logger("heygemd.cluster")
        self.tasks: dict[str, WorkerTask] = {}  # the current job's tasks, for the status

    @classmethod
    def connect(cls, config: ClusterConfig) -> ClusterRenderer:
        assert config.broker_url is not None
        url = config.broker_url.get_secret_value()
        return cls(config, make_app(url, config.queue), TaskStore.connect(url), redact(url))

    def models_on_offer(self) -> ModelsOnOffer | None:
        """The models the online workers run, as they publish them; None while no worker is online (or the broker
        is away): a job is then accepted, and its tasks wait in their queue for a worker."""
        try:
            workers = read_workers(self.store.client, self.config.queue, self.config.heartbeat_seconds)
        except redis.RedisError:
            return None
        models = frozenset(worker.engine.model for worker in workers if worker.online and worker.engine is not None)
        return ModelsOnOffer(ModelSource.WORKERS, models) if models else None

    def engine_of(self, record: JobRecord) -> EngineInfo | None:
        """The engine a worker that rendered the job's videos publishes (read now: the coordinator's own list of
        workers may not show a worker that took its task the moment it started); None if none is there."""
        rendered_by = [video.worker.name for video in record.videos if video.worker is not None]
        try:
            workers = {
                worker.name: worker
                for worker in read_workers(self.store.client, self.config.queue, self.config.heartbeat_seconds)
            }
        except redis.RedisError:
            return None
        return next((workers[name].engine for name in rendered_by if name in workers and workers[name].engine), None)

    # -------------------------------------------------------------- one job

    def render(self, job: JobVideos, guard: RenderGuard, observer: RenderObserver) -> RenderEnd:
        end: RenderEnd | None = None
        while True:
            for outcome in self._follow(job, guard, observer):
                end = self._ended(job, outcome) or end
            if guard.cancelled():
                return CANCELLED
            if end is not None:
                return end
            if not job.pending():
                return ALL_ENDED
            if guard.stop_requested():
                return STOPPED  # the tasks go on; the next start re-attaches to them
            # else a render was cancelled without the job (a worker stopping): its video is enqueued again

    def _ended(self, job: JobVideos, outcome: TaskOutcome | GivenUp) -> RenderEnd | None:
        video, record = outcome.video, job.record
        if isinstance(outcome, GivenUp):
            job.ends.failed(record, video, outcome.failure, None)
            return None
        end = None
        if outcome.view.state is TaskState.CANCELLED:
            job.ends.task_cancelled(record, video)
        elif outcome.report is not None:
            job.ends.done(
                record, video, outcome.output, job.output_dir, outcome.report, outcome.seconds, rendered_by(outcome.view)
            )
        else:
            assert outcome.failure is not None
            retry_at = job.ends.failed(record, video, outcome.failure, outcome.seconds, rendered_by(outcome.view))
            if retry_at is not None:
                end = RenderEnd(EndKind.RETRY, retry_at=retry_at, failure=outcome.failure)
        self.forget(outcome.task_id)
        remove_tree(outcome.output.parent)
        return end

    def _follow(self, job: JobVideos, guard: RenderGuard, observer: RenderObserver) -> Iterator[TaskOutcome | GivenUp]:
        """Yield each pending video's outcome as it ends."""
        active: dict[str, VideoRecord] = {}
        missing_since: dict[str, float] = {}
        for video in job.pending():
            if video.task_id is None:
                self._enqueue(job, video)
            else:
                self.log.info("re-attached to a render task in flight", video=video.template, task_id=video.task_id)
            if video.task_id is not None:
                active[video.task_id] = video
        broker_down = False
        while active:
            if guard.cancelled():
                self._cancel(active)
                return
            if guard.stop_requested():
                self.log.info(
                    "stopping; the render tasks go on, and are re-attached to at the next start", tasks=len(active)
                )
                return
            try:
                yield from self._look(job, active, missing_since)
                if broker_down:
                    self.log.info("the broker answers again", broker=self.broker)
                    broker_down = False
            except redis.RedisError as err:
                if not broker_down:
                    self.log.warning(
                        "the broker does not answer; waiting for it", broker=self.broker, error=type(err).__name__
                    )
                broker_down = True
            observer.tasks(list(self.tasks.values()))
            time.sleep(self.config.poll_seconds)
        self.tasks.clear()
        observer.tasks([])

    def _look(
        self, job: JobVideos, active: dict[str, VideoRecord], missing_since: dict[str, float]
    ) -> Iterator[TaskOutcome | GivenUp]:
        now = time.monotonic()
        for task_id, video in list(active.items()):
            view = self.store.read(task_id)
            lost = None
            if view is None:
                lost = "its state is gone from the broker (Redis restarted?)"
            elif view.state is TaskState.STARTED and not self.store.alive(task_id):
                first = missing_since.setdefault(task_id, now)
                if now - first >= self.config.heartbeat_seconds:
                    lost = f"its worker ({view.worker}) stopped beating"
            elif view.state is TaskState.DONE and not _output(job, task_id, video).exists():
                lost = "its output is gone (adopted before a restart?)"
            elif view.state is TaskState.STARTED:
                missing_since.pop(task_id, None)
            if view is not None:
                self.tasks[task_id] = worker_task(task_id, video.template, view)
            if lost is not None:
                del active[task_id]
                self.tasks.pop(task_id, None)
                missing_since.pop(task_id, None)
                self.store.forget(task_id)
                self.log.warning(
                    "render task lost; the video is enqueued again",
                    video=video.template,
                    task_id=task_id,
                    why=lost,
                    attempts=video.task_attempts,
                )
                if video.task_attempts >= MAX_TASK_ATTEMPTS:
                    yield GivenUp(
                        video,
                        Failure(
                            code=ErrorCode.SERVICE_CRASHED,
                            reason=f"{video.template}: {video.task_attempts} workers "
                            "stopped while rendering it (out of memory, or a crash); it was set aside.",
                        ),
                    )
                    continue
                self._enqueue(job, video)
                assert video.task_id is not None
                active[video.task_id] = video
                continue
            if view is not None and view.state in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED):
                del active[task_id]
                self.tasks.pop(task_id, None)
                yield TaskOutcome(video, task_id, view, _output(job, task_id, video))

    def _enqueue(self, job: JobVideos, video: VideoRecord) -> None:
        task_id = uuid.uuid4().hex
        job.ends.task_enqueued(job.record, video, task_id)  # journaled first: a crash right after still knows the task
        plan = job.planned[video.output_stem]
        task = RenderTask(
            task_id=task_id,
            job_id=job.record.job_id,
            job=job.record.name,
            template=video.template,
            audio=str(job.audio),
            video=str(plan.source),
            output=str(_output(job, task_id, video)),
            options=plan.options,
            model=job.model,
        )
        queue = task_queue(self.config.queue, job.model)
        try:
            self.store.create(task_id)
            self.app.send_task(TASK_NAME, args=[task.model_dump(mode="json")], task_id=task_id, queue=queue)
        except Exception as err:  # the broker is away: the hash is missing, so the follower enqueues it again
            self.log.warning(
                "cannot enqueue the render task now; tried again", video=video.template, error=type(err).__name__
            )
            return
        self.log.info("render task enqueued", video=video.template, task_id=task_id, queue=queue)

    def _cancel(self, active: dict[str, VideoRecord]) -> None:
        """Revoke every task of the job and flag it: a started render stops at its worker's next heartbeat."""
        for task_id in active:
            try:
                self.store.cancel(task_id)
                self.app.control.revoke(task_id)
            except Exception as err:
                self.log.warning("cannot cancel a render task", task_id=task_id, error=type(err).__name__)
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                views = {task_id: self.store.read(task_id) for task_id in active}
            except redis.RedisError:
                break
            if all(view is None or view.state is not TaskState.STARTED for view in views.values()):
                break
            time.sleep(self.config.poll_seconds)
        for task_id in active:
            self.forget(task_id)
        self.tasks.clear()

    def forget(self, task_id: str) -> None:
        try:
            self.store.forget(task_id)
        except redis.RedisError:
            pass  # it expires on its own


def _output(job: JobVideos, task_id: str, video: VideoRecord) -> Path:
    return job.job_dir / TASKS_FOLDER / task_id / video_name(video.output_stem)
