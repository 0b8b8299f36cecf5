"""`heygemd worker`: a Celery worker with a warm engine that renders one template video per task.

Solo pool: the render runs in the worker's own process (CUDA does not survive fork) and one video at
a time. The task's hash in Redis (store.py) says who renders it, how far it is, and how it ended; a
heartbeat key, refreshed every third of ``cluster.heartbeat_seconds``, says that the worker lives.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from heygemd.atomic import fsync_file
from heygemd.cluster.app import make_app, redact
from heygemd.cluster.paths import PathMap
from heygemd.cluster.presence import WorkerPresence, gpu_name, model_words
from heygemd.cluster.protocol import TASK_NAME, RenderTask, TaskState, model_queue
from heygemd.cluster.store import TaskStore
from heygemd.codes import ErrorCode
from heygemd.daemon.config import ConfigError, HeygemdConfig, LogConfig, load_config
from heygemd.daemon.engine_start import start_engine
from heygemd.daemon.logs import configure_logging, get_logger
from heygemd.daemon.render_port import RenderEngine
from heygemd.daemon.reports import host_name, utc_now
from heygemd.daemon.status import ClusterWorker
from heygemd.daemon.supervise import RenderHung, StallWatch
from heygemd.daemon.video_end import render_failure
from heygemd.engine import EngineError, RenderCancelled, RenderProgress
from heygemd.exitcodes import ExitCode
from heygemd.names import display_json

PROGRESS_INTERVAL_SECONDS = 0.5


class VideoRenderer:
    """The task's body, around a warm engine (heygemd.engine.LipSyncEngine)."""

    def __init__(
        self, engine: RenderEngine, store: TaskStore, config: HeygemdConfig, name: str, presence: WorkerPresence
    ) -> None:
        self.engine = engine
        self.presence = presence
        self.store = store
        self.name = name
        self.heartbeat_seconds = config.cluster.heartbeat_seconds
        self.paths = PathMap(config.cluster.path_map)
        self.stall_watch = StallWatch.for_stall(config.service.stall_seconds)
        self.log = get_logger("heygemd.worker")

    def run(self, task: RenderTask) -> dict[str, Any]:
        log = self.log.bind(job=task.job, video=task.template, task_id=task.task_id)
        if not self.store.start(task.task_id, self.name, self.presence.me.host, self.presence.me.gpu):
            log.info("task skipped: already started elsewhere, or given up on by the coordinator")
            return {"skipped": True}
        cancel = threading.Event()
        ended = threading.Event()
        beating = threading.Thread(target=self._beat, args=(task.task_id, cancel, ended), daemon=True)
        beating.start()
        log.info("rendering")
        self.presence.task_started(task.job, task.job_id, task.template)
        started = time.monotonic()
        try:
            return self._render(task, cancel, log, started)
        finally:
            ended.set()
            beating.join(timeout=5)
            self.presence.task_ended()

    def _render(self, task: RenderTask, cancel: threading.Event, log: Any, started: float) -> dict[str, Any]:
        output = Path(self.paths.local(task.output))
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            with self.engine.prepare_audio(Path(self.paths.local(task.audio))) as audio:
                report = self.stall_watch.run(
                    lambda progress: self.engine.render(
                        audio, Path(self.paths.local(task.video)), output, task.options, progress=progress, cancel=cancel
                    ),
                    self._progress_writer(task.task_id),
                    cancel,
                )
            fsync_file(output)
        except RenderCancelled:
            self.store.end(task.task_id, self.name, TaskState.CANCELLED, seconds=repr(time.monotonic() - started))
            log.info("render cancelled")
            return {"cancelled": True}
        except RenderHung:
            log.error("a render hung and could not be stopped; the worker exits (systemd restarts it)")
            os._exit(ExitCode.RENDER_HUNG)
        except Exception as err:  # one bad video never stops the worker
            failure = render_failure(task.template, err)
            if failure.code is ErrorCode.INTERNAL:
                log.exception("video failed with an internal error")
            self.store.end(
                task.task_id,
                self.name,
                TaskState.FAILED,
                failure=display_json(failure, indent=None),
                seconds=repr(time.monotonic() - started),
            )
            log.warning("video failed", code=failure.code.value, reason=failure.reason)
            return {"failure": failure.model_dump(mode="json")}
        seconds = time.monotonic() - started
        self.store.end(
            task.task_id, self.name, TaskState.DONE, report=display_json(report, indent=None), seconds=repr(seconds)
        )
        log.info("video done", seconds=round(seconds, 3))
        # Celery logs a task's return value: the report is in the task store, where the coordinator reads it.
        return {"worker": self.name, "seconds": seconds, "output": output.name}

    def _progress_writer(self, task_id: str):
        last = [0.0]

        def write(progress: RenderProgress) -> None:
            self.presence.task_progress(progress)
            now = time.monotonic()
            if now - last[0] < PROGRESS_INTERVAL_SECONDS and progress.frames_done < progress.frames_total:
                return
            last[0] = now
            try:
                self.store.update(
                    task_id,
                    self.name,
                    stage=str(progress.stage),
                    frames_done=progress.frames_done,
                    frames_total=progress.frames_total,
                )
            except Exception:  # progress is only a view: a broker gone for a moment never stops a render
                pass

        return write

    def _beat(self, task_id: str, cancel: threading.Event, ended: threading.Event) -> None:
        while True:
            try:
                if self.store.beat(task_id, self.name, self.heartbeat_seconds):
                    cancel.set()
            except Exception as err:  # Redis restarting: the coordinator re-enqueues; this render goes on meanwhile
                self.log.warning("cannot refresh the task's heartbeat", error=type(err).__name__)
            if ended.wait(self.heartbeat_seconds / 3):
                return


def _keep_our_logging(**kwargs: Any) -> None:
    return None


def worker_name(device: str | None) -> str:
    return f"{socket.gethostname()}/{device or 'cpu'}/{os.getpid()}"


def run_worker(explicit_config: Path | None, device: str | None) -> int:
    try:
        config = load_config(explicit_config).config
    except ConfigError as err:
        configure_logging(LogConfig())
        get_logger("heygemd.worker").error("configuration error", error=str(err))
        return ExitCode.CONFIG
    configure_logging(config.log)
    log = get_logger("heygemd.worker")
    if config.cluster.broker_url is None:
        log.error("heygemd worker needs cluster.broker_url (redis://host:port/db) in the configuration")
        return ExitCode.CONFIG
    url = config.cluster.broker_url.get_secret_value()
    settings = config.engine if device is None else config.engine.model_copy(update={"device": device})
    name = worker_name(settings.device if device else None)
    log.info(
        "heygemd worker starting",
        worker=name,
        broker=redact(url),
        queue=config.cluster.queue,
        dry_run=settings.dry_run,
        device=settings.device,
    )
    try:
        engine = start_engine(settings, config.paths.state)
    except EngineError as err:
        log.error("the engine cannot start", error=str(err))
        return ExitCode.MISSING_WEIGHTS
    store = TaskStore.connect(url)
    info = engine.describe()
    presence = WorkerPresence(
        store.client,
        config.cluster.queue,
        ClusterWorker(
            name=name,
            host=host_name(),
            gpu=gpu_name(info.device),
            model=model_words(info),
            engine=info,
            started_at=utc_now(),
            last_heartbeat=utc_now(),
        ),
        config.cluster.heartbeat_seconds,
    )
    renderer = VideoRenderer(engine, store, config, name, presence)
    app = make_app(url, config.cluster.queue)

    @app.task(name=TASK_NAME, bind=True)
    def render_video(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
        return renderer.run(RenderTask.model_validate(payload))

    from celery.signals import setup_logging

    setup_logging.connect(_keep_our_logging, weak=False)  # a receiver here: Celery leaves logging as configured
    log.info("ready", worker=name, model=info.model.value)
    worker = app.Worker(
        pool="solo",
        concurrency=1,
        hostname=f"heygemd@{name.replace('/', '-')}",
        queues=[config.cluster.queue, model_queue(config.cluster.queue, info.model)],
        quiet=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    )
    presence.start()
    try:
        worker.start()
    finally:
        presence.stop()
    return int(worker.exitcode or 0)
