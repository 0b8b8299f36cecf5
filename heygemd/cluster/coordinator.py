"""`heygemd run` in cluster mode becomes the queue's one coordinator, and renders through the workers."""

from __future__ import annotations

import atexit

import structlog

from heygemd.cluster.leader import CoordinatorLock
from heygemd.cluster.presence import WorkerWatch
from heygemd.cluster.renderer import ClusterRenderer
from heygemd.daemon.render_port import RendererStart


def become_coordinator(start: RendererStart) -> ClusterRenderer | None:
    """Wait as a standby until this process holds the queue's coordinator lock; None if stopped meanwhile."""
    cluster = start.config.cluster
    renderer = ClusterRenderer.connect(cluster)
    lock = CoordinatorLock(renderer.store.client, cluster.queue, start.service_id, cluster.coordinator_lock_seconds)
    log = structlog.get_logger("heygemd.daemon")

    def standby(holder: str | None) -> None:
        log.info("another coordinator serves this queue; standing by", holder=holder, queue=cluster.queue)
        start.on_standby(holder)

    log.info("cluster mode: videos render on heygemd workers", broker=renderer.broker, queue=cluster.queue)
    watch = WorkerWatch(renderer.store.client, cluster.queue, cluster.heartbeat_seconds, start.on_workers)
    watch.start()  # also while standing by: the page shows the workers
    atexit.register(watch.stop)
    if not lock.wait(start.stop_requested, standby):
        return None
    lock.keep(start.on_lost)
    atexit.register(lock.release)
    log.info("coordinator of the queue", queue=cluster.queue)
    return renderer
