"""Workers publish themselves in Redis with their heartbeat; the coordinator reads them for the service's status.

One hash per queue, ``heygemd:workers:<queue>``: a field per worker name, its value a ClusterWorker as JSON
(host, GPU, model, the video it renders with frames, fps and time left, the last heartbeat). A worker that
stops cleanly removes its field; one whose heartbeat is older than the lost limit shows as lost, and is
forgotten after FORGET_LOST_SECONDS. "Online" compares the worker's clock with the coordinator's: hosts
of a cluster are expected to run NTP.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis
import structlog
from pydantic import ValidationError

from heygemd.cluster.protocol import workers_key
from heygemd.daemon.reports import utc_now
from heygemd.daemon.status import ClusterWorker, CurrentJob
from heygemd.engine import EngineInfo, RenderProgress

FORGET_LOST_SECONDS = 3600.0  # a lost worker stays on the page this long, then it is dropped from the hash
LOST_AFTER_HEARTBEATS = 2.0  # a worker is lost when its last heartbeat is older than this many heartbeat periods


def gpu_name(device: str) -> str:
    """The GPU's name for a cuda device, else "CPU"."""
    if not device.startswith("cuda"):
        return "CPU"
    try:
        import torch

        return str(torch.cuda.get_device_name(torch.device(device)))
    except Exception:  # a driver that fails here still renders; the name is only for people
        return device


def model_words(info: EngineInfo) -> str:
    if info.dry_run:
        return "dry run (no model)"
    checkpoint = info.checkpoint.path.name if info.checkpoint is not None else "wav2lip"
    detector = info.detector.value if info.detector is not None else "?"
    return f"{checkpoint}, {detector} detector, batch {info.batch_size}"


class WorkerPresence:
    """The worker's side: its ClusterWorker, written every third of the heartbeat period from a thread."""

    def __init__(self, client: redis.Redis, queue: str, me: ClusterWorker, heartbeat_seconds: float) -> None:
        self.client = client
        self.key = workers_key(queue)
        self.me = me
        self.period = heartbeat_seconds / 3
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.log = structlog.get_logger("heygemd.worker")

    def start(self) -> None:
        self.publish()
        self._thread = threading.Thread(target=self._beat, name="worker-presence", daemon=True)
        self._thread.start()

    def task_started(self, job: str, job_id: str, video: str) -> None:
        with self._lock:
            self.me.task = CurrentJob(job=job, job_id=job_id, video=video, index=1, total=1)
        self.publish()

    def task_progress(self, progress: RenderProgress) -> None:
        with self._lock:
            if self.me.task is not None:
                self.me.task.advance(progress.frames_done, progress.frames_total, progress.stage)

    def task_ended(self) -> None:
        with self._lock:
            self.me.task = None
        self.publish()

    def publish(self) -> None:
        with self._lock:
            self.me.last_heartbeat = utc_now()
            value = self.me.model_dump_json()
        try:
            self.client.hset(self.key, self.me.name, value)
        except redis.RedisError as err:  # the broker away for a moment: the next beat tries again
            self.log.warning("cannot publish the worker's heartbeat", error=type(err).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.client.hdel(self.key, self.me.name)
        except redis.RedisError:
            pass

    def _beat(self) -> None:
        while not self._stop.wait(self.period):
            self.publish()


def read_workers(client: redis.Redis, queue: str, heartbeat_seconds: float) -> list[ClusterWorker]:
    """The queue's workers, online ones first, each marked online or lost; long-lost ones are dropped."""
    now = datetime.now(UTC)
    lost_after = timedelta(seconds=heartbeat_seconds * LOST_AFTER_HEARTBEATS)
    workers: list[ClusterWorker] = []
    for name, raw in client.hgetall(workers_key(queue)).items():
        try:
            worker = ClusterWorker.model_validate_json(raw)
        except ValidationError:  # another heygemd version's shape: dropped, it publishes again if alive
            client.hdel(workers_key(queue), name)
            continue
        age = now - worker.last_heartbeat
        if age.total_seconds() > FORGET_LOST_SECONDS:
            client.hdel(workers_key(queue), name)
            continue
        worker.online = age <= lost_after
        workers.append(worker)
    return sorted(workers, key=lambda worker: (not worker.online, worker.name))


class WorkerWatch:
    """The coordinator's side: reads the workers every third of the heartbeat period and hands them on."""

    def __init__(
        self,
        client: redis.Redis,
        queue: str,
        heartbeat_seconds: float,
        on_workers: Callable[[list[ClusterWorker]], None],
    ) -> None:
        self.client = client
        self.queue = queue
        self.heartbeat_seconds = heartbeat_seconds
        self.on_workers = on_workers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="worker-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while True:
            try:
                self.on_workers(read_workers(self.client, self.queue, self.heartbeat_seconds))
            except redis.RedisError:
                pass  # the broker away: the last list stays, and turns lost by itself on the page's clock
            if self._stop.wait(self.heartbeat_seconds / 3):
                return
