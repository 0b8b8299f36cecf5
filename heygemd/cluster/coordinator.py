"""`heygemd run` in cluster mode: the service (daemon/worker.py) becomes the queue's one coordinator."""

from __future__ import annotations

import atexit
import time
from typing import Any

from heygemd.cluster.dispatch import Dispatcher, TaskProgress
from heygemd.cluster.leader import CoordinatorLock
from heygemd.daemon.status import WorkerTask

STATUS_INTERVAL_SECONDS = 1.0


def become_coordinator(service: Any) -> bool:
    """Wait as a standby until this process holds the queue's coordinator lock; False if stopped meanwhile."""
    dispatcher = Dispatcher(service.config.cluster)
    cluster = service.config.cluster
    lock = CoordinatorLock(dispatcher.store.client, cluster.queue, service.service_id, cluster.coordinator_lock_seconds)

    def standby(holder: str | None) -> None:
        service.log.info("another coordinator serves this queue; standing by", holder=holder, queue=cluster.queue)
        service._set_state("standby")

    service.log.info("cluster mode: videos render on heygemd workers", broker=dispatcher.broker, queue=cluster.queue)
    if not lock.wait(service.signals.stop_requested, standby):
        return False

    def lost() -> None:
        service.signals.stop_requested.set()
        service.wake.set()

    lock.keep(lost)
    atexit.register(lock.release)
    service.log.info("coordinator of the queue", queue=cluster.queue)
    service.distributor = dispatcher
    service.status.cluster = True
    return True


def show_tasks(service: Any, tasks: list[TaskProgress]) -> None:
    """The job's tasks into the status (status.json, STATUS=), at most once a second; keeps the watchdog fed."""
    service.notifier.watchdog()
    service.status.tasks = [
        WorkerTask(
            video=task.video,
            task_id=task.task_id,
            state=task.state.value,
            worker=task.worker,
            stage=task.stage,
            frames_done=task.frames_done,
            frames_total=task.frames_total,
            percent=round(100 * task.frames_done / task.frames_total, 1)
            if task.frames_done is not None and task.frames_total
            else None,
        )
        for task in tasks
    ]
    now = time.monotonic()
    if now - service._last_progress_status >= STATUS_INTERVAL_SECONDS or not tasks:
        service._last_progress_status = now
        service._set_state("working", force=False)
