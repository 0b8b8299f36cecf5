"""What travels between the coordinator and the workers: the task, its state, its outcome (typed, JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, Field

from heygemd.codes import Failure
from heygemd.engine import ModelKind, RenderOptions, RenderReport

TASK_NAME = "heygemd.render_video"
KEY_PREFIX = "heygemd"


def model_queue(queue: str, model: ModelKind) -> str:
    """The Celery queue of the tasks only a worker running ``model`` may take (a job.toml that names its model).

    Every worker consumes the cluster's queue (tasks of jobs that name no model) and its own model's queue.
    """
    return f"{queue}.{model.value}"


def task_queue(queue: str, model: ModelKind | None) -> str:
    """Where a task for a job needing ``model`` is sent (None: any worker)."""
    return queue if model is None else model_queue(queue, model)


def task_key(task_id: str) -> str:
    return f"{KEY_PREFIX}:task:{task_id}"


def alive_key(task_id: str) -> str:
    return f"{KEY_PREFIX}:alive:{task_id}"


def workers_key(queue: str) -> str:
    return f"{KEY_PREFIX}:workers:{queue}"


def coordinator_key(queue: str) -> str:
    return f"{KEY_PREFIX}:coordinator:{queue}"


class TaskState(StrEnum):
    QUEUED = "queued"  # enqueued by the coordinator, no worker has started it
    STARTED = "started"  # a worker renders it (its heartbeat key lives while it does)
    DONE = "done"  # rendered: the output is in the task's folder, the report in the hash
    FAILED = "failed"  # the render failed: the failure (permanent or transient) in the hash
    CANCELLED = "cancelled"  # stopped by a cancel


class RenderTask(BaseModel):
    """One template video of a job; paths as the coordinator sees them (the worker translates them)."""

    task_id: str
    job_id: str
    job: str = Field(description="the job folder's name, for logs and status")
    template: str
    audio: str
    video: str
    output: str = Field(description="the finished .mp4, in the task's own folder under the job's work folder")
    options: RenderOptions
    model: ModelKind | None = Field(None, description="job.toml's model: sent to that model's queue (None: any worker)")


class TaskView(BaseModel):
    """The hash of one task, as read back."""

    state: TaskState
    worker: str | None = None
    worker_host: str | None = None
    worker_gpu: str | None = None
    stage: str | None = None
    frames_done: int | None = None
    frames_total: int | None = None
    report: RenderReport | None = None
    failure: Failure | None = None
    seconds: float | None = None
    started_at: float | None = None  # time.time() of the worker
    enqueued_at: float | None = None  # time.time() of the coordinator
    ended_at: float | None = None

    @classmethod
    def from_hash(cls, raw: Mapping[bytes | str, bytes | str]) -> TaskView:
        fields = {_text(key): _text(value) for key, value in raw.items()}
        return cls(
            state=TaskState(fields["state"]),
            worker=fields.get("worker"),
            worker_host=fields.get("worker_host"),
            worker_gpu=fields.get("worker_gpu"),
            stage=fields.get("stage"),
            frames_done=int(fields["frames_done"]) if "frames_done" in fields else None,
            frames_total=int(fields["frames_total"]) if "frames_total" in fields else None,
            report=RenderReport.model_validate_json(fields["report"]) if "report" in fields else None,
            failure=Failure.model_validate_json(fields["failure"]) if "failure" in fields else None,
            seconds=float(fields["seconds"]) if "seconds" in fields else None,
            started_at=float(fields["started_at"]) if "started_at" in fields else None,
            enqueued_at=float(fields["enqueued_at"]) if "enqueued_at" in fields else None,
            ended_at=float(fields["ended_at"]) if "ended_at" in fields else None,
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
